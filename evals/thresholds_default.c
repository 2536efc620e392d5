/* The shipped default thresholds (evals/thresholds.default.json, embedded so the binary needs
 * no source tree; tests/cli_validate.sh checks that the two are identical). Regenerate with:
 * tools/embed_thresholds.sh */
const char qv_thresholds_default_json[] =
    "{\n"
    "  \"schema\": \"qvet.thresholds\",\n"
    "  \"schema_version\": 1,\n"
    "  \"name\": \"qvet default go/no-go thresholds v1 (provisional: to be tuned on real checkpoints)\",\n"
    "  \"thresholds\": {\n"
    "    \"ln_ppl_ratio_hi\": {\"max\": 0.05, \"why\": \"Upper 95% bound of ln(ppl_C/ppl_R) from the paired per-chunk NLL differences. 0.05 allows a perplexity cost of at most ~5.1%: QoQ's published W4A8KV4 results sit within a few percent of FP16, so a calibration beyond that is a regression. The upper bound (not the point value) makes a small, noisy run fail rather than pass.\"},\n"
    "    \"kld_mean\": {\"max\": 0.05, \"why\": \"Mean KL(R||C) per token in nats. Good 4-bit weight quantizations of 7-8B models measure a few hundredths of a nat; 0.05 flags a candidate whose whole distribution drifts, even when perplexity happens to look fine.\"},\n"
    "    \"kld_p99\": {\"max\": 0.5, \"why\": \"99th percentile of per-token KLD. The mean hides rare catastrophic positions (outlier channels clipped, KV4 overflow); 1% of tokens with more than half a nat of divergence means the candidate often changes what the model would say.\"},\n"
    "    \"top1_lo\": {\"min\": 0.85, \"why\": \"Lower 95% bound of top-1 agreement (argmax_R == argmax_C). Greedy decoding follows argmax: below ~85% the candidate's greedy text diverges from the reference within a few tokens.\"},\n"
    "    \"needle_lp_delta_mean\": {\"min\": -0.25, \"why\": \"Mean over the needle grid of (C - R) teacher-forced mean log-probability of the answer tokens. -0.25 nats is a 22% drop of the answer's probability per token: long-context retrieval (KV4 keys, attention outliers) must not degrade beyond that.\"},\n"
    "    \"needle_hit_delta\": {\"min\": -0.1, \"why\": \"Exact-retrieval rate C minus R over the needle grid. Losing more than 10 points (3 of the default 30 cells) means the candidate forgets facts the reference finds.\"},\n"
    "    \"longbench_delta\": {\"min\": -5, \"why\": \"Default for every LongBench task without its own entry: task score C minus R in LongBench points (0-100). Good 4-bit weight / KV quantizations move LongBench task scores by about a point on full task sets; 5 points leaves room for the sampling noise of a subset of a few hundred samples while failing a candidate that loses a task. Add \\\"longbench_delta.<task>\\\" entries to set a task's own bar.\"},\n"
    "    \"longbench_delta.qvet_passage_retrieval\": {\"min\": -25, \"why\": \"qvet's synthetic passage retrieval runs 8 samples by default, so one answer moves the score by 12.5 points: -25 fails a candidate that loses two retrievals the reference makes, not one flip of a weak model's guess.\"},\n"
    "    \"longbench_delta.qvet_passage_count\": {\"min\": -25, \"why\": \"Same sample count as the synthetic retrieval (8): one count answer is 12.5 points; -25 fails a candidate that loses two.\"},\n"
    "    \"longbench_delta.qvet_kv_retrieval\": {\"min\": -25, \"why\": \"8 samples scored with qa_f1: one lost value is up to 12.5 points; -25 fails a candidate that loses two values the reference retrieves.\"}\n"
    "  }\n"
    "}\n";
