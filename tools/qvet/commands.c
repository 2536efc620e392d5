/* The command table: every command of CLI.md is registered; those with fn == NULL answer
 * "not implemented yet" (exit 2). One line per command: edit only your command's line. */
#include <string.h>

#include "cli.h"

#define QV_NYI NULL

const qv_command qv_commands[] = {
    {"info", "info [--model DIR | --quantized CKPT] [--tensors] [--json PATH]",
     "print a model's config, parameter count, tensors and tokenizer, or a checkpoint's metadata; checks the files", qv_cmd_info},
    {"synth", "synth --out DIR [--preset tiny|small|llama3-8b-shape] [--seed N]",
     "write the built-in synthetic Llama as a Hugging Face folder", qv_cmd_synth},
    {"tokenize", "tokenize [--model DIR | --tokenizer FILE] [--text STR | < stdin] [--bos] [--decode]",
     "print token ids as a JSON array (no BOS unless --bos); --decode goes the other way", qv_cmd_tokenize},
    {"logits", "logits [--model DIR] --engine E [--quantized CKPT] [--attn kv4|serve] [--dtype fp16|bf16] [--fp-kv] [--fp-weights LAYERS] [--fp-acts LAYERS] (--ids 1,2,3 | --ids-file F.json) [--last N] --out F.json [--threads N]",
     "run a forward pass and write the logits of the last N positions", qv_cmd_logits},
    {"quantize", "quantize --model DIR --calib TEXT --out CKPT [--format w4a8-g128|w4a8-chn|w8a8] [--kv 4|16] [--no-smooth-attn] [--no-rotate] [--no-smooth] [--no-clip] [--no-gptq] [--rotate-v] [--samples N] [--seqlen L] [--seed N] [--threads N] [--verbose]",
     "QoQ calibration -> quantized checkpoint", qv_cmd_quantize},
    {"ppl", "ppl [--model DIR] --engine E [--quantized CKPT] [--attn kv4|serve] [--dtype fp16|bf16] [--qserve-compat] [--fp-kv] [--fp-weights LAYERS] [--fp-acts LAYERS] --text FILE [--ctx 2048] [--max-tokens N] [--no-bos] [--json PATH] [--shard i/n] [--resume] [--threads N]",
     "perplexity with its confidence interval", qv_cmd_ppl},
    {"compare", "compare [--model DIR] [--cand-model DIR] --ref E1 --cand E2 [--quantized CKPT] --text FILE [--ctx N] [--max-tokens N] [--no-bos] [--json F] [--shard i/n] [--resume] [--cand-round-bits N] | compare --ref-logits R --cand-logits C [--ids IDS] [--json F]",
     "perplexity of both, KL-divergence statistics, top-1 agreement, delta-p", qv_cmd_compare},
    {"dump-ids", "dump-ids [--model DIR] --text FILE [--ctx N] [--max-tokens N] [--no-bos] --out IDS",
     "write the exact token chunks an eval scores", qv_cmd_dump_ids},
    {"niah", "niah [--model DIR] --ref E1 --cand E2 [--haystack FILE] [--lengths L1,L2,..] [--depths D1,..] [--passkey] [--seed N] [--json F] [--shard i/n] [--resume]",
     "needle-in-a-haystack / passkey grid for both engines", qv_cmd_niah},
    {"longbench", "longbench [--model DIR] [--ref E1 --cand E2] (--data DIR --longbench-config DIR [--e] [--english-only] | --synthetic CORPUS [--words N] [--write-data DIR]) [--tasks a,b] [--samples N] [--max-length N] [--chat TEMPLATE] [--pred-dir DIR] [--json F] [--shard i/n] [--resume] [--seed N] [engine options] | longbench --score PRED_DIR [--json F] [--e] [--english-only]",
     "LongBench (pred.py's prompts, truncation and greedy decoding) with both engines, LongBench's metrics and per-task C - R deltas; or score existing predictions", qv_cmd_longbench},
    {"trace", "trace [--model DIR] --ref E1 --cand E2 --text FILE [--ctx N] [--positions A-B] [--ablate kv|w:LAYERS|a:LAYERS|auto]... [--ablate-tokens N] [--quantized CKPT] [--top K] [--no-fp-kv] [--json F] --report DIR",
     "error attribution by layer, head, token position and context length", qv_cmd_trace},
    {"validate", "validate [--model DIR] [--quantized CKPT] [--ref E1 --cand E2] --text FILE [--haystack FILE] [--thresholds F.json] [--ctx N] [--max-tokens N] [--lengths ...] [--depths ...] [--passkey] [--longbench DIR --longbench-config DIR] [--print-thresholds] --report DIR",
     "go/no-go report for a calibration", qv_cmd_validate},
    {"kernels", "kernels [--filter RE] [--seed N] [--cases matrix.json] [--quick] [--backend cpu|gpu|all | --plugin LIB.so] [--json F] | kernels --check DIR [--filter RE] [--json F]",
     "differential tests of every kernel over the case matrix; --plugin: a shared library's kernels (qv_kernel_plugin ABI); --check: an external kernel's dumped cases (docs/byo.md)", qv_cmd_kernels},
    {"bench", "bench [--filter RE] --json F", "kernel benchmarks with baselines measured in the same run", qv_cmd_bench},
    {"fuzz", "fuzz overflow [--time S] [--corpus DIR] [--seed N] | fuzz replay [--corpus DIR]",
     "overflow fuzzing of kernels vs reference / replay the corpus", qv_cmd_fuzz},
    {"gate", "gate [--config gate.json] [--junit F.xml] [--json F] [--baseline OLD.json] [--self-test] [--quick] [--only RE] [--seed N] [--model DIR] | gate --plugin LIB.so [--quick] [--only RE] [--seed N] [--junit F.xml] [--json F]",
     "the CI gate: kernels + corpus replay + golden check + model-level checks; --plugin: the kernel groups on a shared library's kernels", qv_cmd_gate},
    {"golden", "golden check|update [--only NAME] [--dir golden/]", "verify or regenerate stored expected outputs", qv_cmd_golden},
    {"merge", "merge OUT.json SHARD.json...", "join the JSON results of --shard i/n runs of ppl, compare or niah", qv_cmd_merge},
    {NULL, NULL, NULL, NULL},
};

const qv_command *qv_find_command(const char *name)
{
    for (const qv_command *c = qv_commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}
