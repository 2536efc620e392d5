#!/usr/bin/env python3
"""Writes tests/fixtures/longbench/: qvet-written LongBench predictions and the scores that
LongBench's OWN code gives them (its eval.py and metrics.py, imported from the user's checkout,
with the real `rouge`, `fuzzywuzzy` (without python-Levenshtein) and numpy packages).

  git -C LongBench-mirror show HEAD:LongBench/metrics.py > /tmp/longbench/metrics.py   (and eval.py)
  pip install rouge fuzzywuzzy jieba numpy        # NOT python-Levenshtein
  python3 tools/longbench_reference.py /tmp/longbench tests/fixtures/longbench <longbench-commit>

All texts here are qvet's own. Per-item scores are computed with eval.py's per-item loop body (five
lines, mirrored below so that the call stack depth equals eval.py's, which matters for the rouge
package's recursion limit); task totals come from eval.py's scorer() / scorer_e() themselves.
Everything runs at module level on purpose: eval.py calls scorer() from module level too."""
import datetime, difflib, json, os, random, sys, warnings
import importlib.metadata as md

LB, OUT, COMMIT = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, LB)
warnings.simplefilter("ignore")
import numpy as np
import metrics as lbm        # LongBench's metrics.py
import eval as lbe           # LongBench's eval.py (its main is behind __name__ == '__main__')
from fuzzywuzzy import fuzz
try:
    import Levenshtein  # noqa: F401
    sys.exit("python-Levenshtein is installed: LongBench's pinned setup runs fuzzywuzzy without it")
except ImportError:
    pass

def item(dataset, prediction, ground_truths, all_classes):   # eval.py's loop body
    score = 0.
    if dataset in ["trec", "triviaqa", "samsum", "lsht"]:
        prediction = prediction.lstrip('\n').split('\n')[0]
    for ground_truth in ground_truths:
        score = max(score, lbe.dataset2metric[dataset](prediction, ground_truth, all_classes=all_classes))
    return score

rng = random.Random(20240611)
def words(n, pool):
    return " ".join(rng.choice(pool) for _ in range(n))

POOL = "the a an apple Apple river bank bank's money flows north south 42 3.5 x-ray naïve ÉCOLE école Straße ΣΟΦΙΑ σοφια".split()
tasks = {}

# ---- qa_f1 (narrativeqa): articles, punctuation, Unicode, empty, several answers ----
tasks["narrativeqa"] = [
    ("articles", "The cat sat on a mat.", ["cat sat on the mat"]),
    ("article_inside_word", "Anna and the theatre, an answer", ["anna theatre answer"]),
    ("punctuation_glue", "U.S.A. -- it's the 'best'!", ["usa its best"]),
    ("underscore_is_punct", "snake_case a_b", ["snakecase ab"]),
    ("unicode_lower", "ÉCOLE Naïve STRASSE Straße", ["école naïve strasse straße"]),
    ("greek_final_sigma", "ΟΔΥΣΣΕΥΣ ΣΟΦΟΣ", ["οδυσσευς σοφος"]),
    ("greek_sigma_medial_vs_final", "ΟΔΥΣΣΕΥΣ", ["οδυσσευσ"]),
    ("dotted_I_expands", "İSTANBUL", ["i̇stanbul"]),
    ("unicode_space_split", "alpha\u00a0beta\u2003gamma\u3000delta", ["alpha beta gamma delta"]),
    ("curly_quote_not_punct", "“the answer” a’b", ["answer b"]),
    ("repeated_tokens", "yes yes yes no", ["yes no no"]),
    ("empty_prediction", "", ["something"]),
    ("only_articles", "a an the", ["the"]),
    ("multiple_answers_max", "Paris is the capital", ["London", "paris", "capital of France"]),
    ("digits_words", "In 1984, 2 people", ["1984 two people"]),
    ("cjk_in_english_task", "答案 is 北京", ["北京"]),
    ("newlines_kept", "first line\nsecond line", ["second line"]),
]
tasks["triviaqa"] = [
    ("first_line_only", "\n\nMount Everest\nthe tallest mountain", ["Mount Everest"]),
    ("answer_on_second_line", "I think\nMount Everest", ["Mount Everest"]),
    ("crlf_kept_in_line", "Mount Everest\r\nK2", ["mount everest"]),
    ("empty_after_strip", "\n\n\n", ["x"]),
]
# ---- rouge_l (gov_report, samsum) ----
long_sent = words(150, POOL)
tasks["gov_report"] = [
    ("simple", "The report finds costs rose. Agencies disagree.", ["Costs rose sharply. The agencies disagree on causes."]),
    ("empty_prediction", "", ["Anything here."]),
    ("only_dots", "...", ["Anything here."]),
    ("whitespace_piece", "A . . B", ["A B"]),
    ("repeated_words_sets", "the the the cat", ["the cat the cat"]),
    ("case_sensitive", "Costs Rose", ["costs rose"]),
    ("unicode_spaces", "alpha\u2009beta.gamma", ["alpha beta gamma"]),
    ("long_sentence", long_sent, [words(120, POOL) + ". " + words(40, POOL)]),
    ("multi_answer", "budget cuts hurt schools", ["Budget cuts.", "cuts hurt schools"]),
]
tasks["samsum"] = [
    ("first_line", "Tom will call Anna.\nAnna agrees.", ["Tom will call Anna tomorrow."]),
    ("leading_newlines", "\n\nThey meet at 5.\nok", ["They will meet at 5 pm."]),
]
# ---- classification (trec): the remove-while-iterating quirk ----
trec_classes = ["Abbreviation", "Entity", "Description", "Description and abstract concept", "Human being",
                "Location", "Numeric value", "Other location", "Other number", "Other entity",
                "Definition of something", "Location", "City", "Animal"]
tasks["trec"] = [
    ("exact", "Type: Location", ["Location"]),
    ("superstring_removed", "Description and abstract concept", ["Description and abstract concept"]),
    ("two_matches", "Other location or City", ["City"]),
    ("substring_of_truth_kept_by_skip", "Other location, Location", ["Other location"]),
    ("duplicate_class", "Location", ["Location"]),
    ("none", "I do not know", ["Animal"]),
    ("first_line_only", "\nAnimal\nCity", ["Animal"]),
    ("many", "Entity Other entity Human being Animal", ["Other entity"]),
]
# ---- retrieval / count ----
tasks["passage_retrieval_en"] = [
    ("exact", "Paragraph 12", ["Paragraph 12"]),
    ("several_numbers", "Paragraph 12 or paragraph 3, maybe 12", ["Paragraph 12"]),
    ("no_number", "I cannot tell", ["Paragraph 7"]),
    ("digits_glued", "Paragraph 120", ["Paragraph 12"]),
    ("arabic_indic_digits", "Paragraph ١٢ and 12", ["Paragraph 12"]),
    ("fullwidth_digits", "Paragraph １２", ["Paragraph １２"]),
]
tasks["passage_count"] = [
    ("exact", "There are 7 unique paragraphs.", ["7"]),
    ("mixed", "7 or 8 or 07", ["7"]),
    ("none", "many", ["3"]),
    ("decimal", "3.5", ["3"]),
]
# ---- code_sim (lcc, repobench-p): which line qualifies, fuzz.ratio ----
long_code = "        self.assertEqual(result.shape, (batch_size, seq_len, hidden_size * num_heads))  " * 4
tasks["lcc"] = [
    ("first_plain_line", "x = compute(a, b)\ny = 2", ["x = compute(a,b)"]),
    ("skip_comment_lines", "# comment\n// js comment\n```python\nreturn total / count", ["return total / count"]),
    ("hash_inside_string_skipped", "s = '#fff'\nt = 1", ["t = 1"]),
    ("single_slash_ok", "a = b / c", ["a = b // c"]),
    ("all_lines_skipped", "# a\n# b", ["pass"]),
    ("empty_both", "", [""]),
    ("leading_newlines", "\n\n  if x:\n", ["  if x:"]),
    ("long_autojunk", long_code, [long_code[:-7] + "xyz"]),
    ("unicode", "naïve = 'ünïcödé'", ["naive = 'unicode'"]),
    ("multiple_answers", "foo(bar)", ["foo(baz)", "foo(bar) "]),
]
tasks["repobench-p"] = [
    ("identical", "    return self._cache[key]", ["    return self._cache[key]"]),
    ("whitespace_differs", "return self._cache[key]", ["    return self._cache[key]"]),
]

# rouge's recursive _recon: find the longest chain that survives under eval.py's call depth.
# The search calls eval.scorer straight from module level, as eval.py does (one more frame on the
# stack would move the threshold by one).
def chain_case(total_frames):
    nx = total_frames // 2
    ny = total_frames - nx
    truth = "w " + " ".join("a%d" % i for i in range(nx - 1))
    pred = "w " + " ".join("b%d" % i for i in range(ny - 1))
    return pred, truth
lo, hi = 10, 5000
while hi - lo > 1:
    mid = (lo + hi) // 2
    p_mid, t_mid = chain_case(mid)
    if lbe.scorer("gov_report", [p_mid], [[t_mid]], None) > 0:
        lo = mid
    else:
        hi = mid
MAX_FRAMES = lo
p_ok, t_ok = chain_case(MAX_FRAMES)
p_bad, t_bad = chain_case(MAX_FRAMES + 1)
tasks["gov_report"].append(("recursion_limit_ok", p_ok, [t_ok]))
tasks["gov_report"].append(("recursion_limit_exceeded", p_bad, [t_bad]))

# LongBench-E: a qa task with > 128 items per bucket (numpy's pairwise summation blocks)
e_lines = []
for i in range(420):
    n = 1 + rng.randrange(9)
    e_lines.append(("e%03d" % i, words(n, POOL), [words(1 + rng.randrange(6), POOL)], [1000, 5000, 9000, 3999, 4000, 7999, 8000][i % 7] + rng.randrange(50)))
tasks["hotpotqa"] = e_lines

os.makedirs(os.path.join(OUT, "pred"), exist_ok=True)
expected = {"items": {}, "scores": {}, "scores_e": {}}
for task, cases in tasks.items():
    classes = trec_classes if task == "trec" else None
    path = os.path.join(OUT, "pred", task + ".jsonl")
    preds, answers, lengths, its = [], [], [], []
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for k, c in enumerate(cases):
            name, pred, ans = c[0], c[1], c[2]
            length = c[3] if len(c) > 3 else 1000 * (k + 1)
            f.write(json.dumps({"pred": pred, "answers": ans, "all_classes": classes, "length": length,
                                "case": name}, ensure_ascii=False) + "\n")
            preds.append(pred); answers.append(ans); lengths.append(length)
            its.append({"case": name, "score": item(task, pred, ans, classes)})
    expected["items"][task] = its
    expected["scores"][task] = lbe.scorer(task, preds, answers, classes)
    # an empty bucket is NaN in LongBench (np.mean of nothing); JSON null here
    expected["scores_e"][task] = {k: (None if v != v else v)
                                  for k, v in lbe.scorer_e(task, preds, answers, lengths, classes).items()}

# ---- difflib / fuzz.ratio on hard pairs ----
sm = []
def add_sm(a, b):
    sm.append({"a": a, "b": b, "ratio": difflib.SequenceMatcher(None, a, b).ratio(), "fuzz": fuzz.ratio(a, b)})
add_sm("abcd", "bcde"); add_sm(" abcd", "abcd abcd"); add_sm("qabxcd", "abycdf")
add_sm("", "x"); add_sm("x", ""); add_sm("", ""); add_sm("same", "same")
add_sm("a" * 250, "a" * 250 + "b")        # 'a' popular in b: autojunk
add_sm("a" * 199, "a" * 199)
add_sm("ab" * 150, "ba" * 150)
add_sm(long_code, long_code[::-1])
add_sm("ünïcödé ✓ 漢字", "unicode ✓ 漢字")
add_sm("x" * 300 + "y", "y" + "x" * 300)
for t in range(40):
    alpha = "abcde " if t % 2 else "abcdefghijklmnopqrstuvwxyz ()_.="
    la, lb = rng.randrange(0, 400), rng.randrange(1, 400)
    a = "".join(rng.choice(alpha) for _ in range(la))
    b = "".join(rng.choice(alpha) for _ in range(lb))
    add_sm(a, b)
expected["seqmatch"] = sm

# ---- numpy mean and the two roundings ----
nm = []
for n in [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 130, 255, 256, 257, 300, 1000]:
    v = [rng.random() / 3 for _ in range(n)]
    nm.append({"values": v, "mean": float(np.mean(v))})
expected["np_mean"] = nm
rd = []
for x in [0.125, 0.375, 2.675, 1.005, 99.975, 33.335, 66.665, 12.345, 0.5, 1.5, 2.5, -0.5, 49.995,
          100.0, 0.0, 12.5, 13.5] + [rng.random() * 100 for _ in range(50)]:
    rd.append({"x": x, "py_round": round(x), "py_round2": round(x, 2), "np_round2": float(round(np.float64(x), 2))})
expected["round"] = rd

expected["rouge_max_recon_frames"] = MAX_FRAMES
expected["provenance"] = {
    "tool": "tools/longbench_reference.py",
    "command": "python3 tools/longbench_reference.py %s %s %s" % (LB, OUT, COMMIT),
    "longbench_repo": "THUDM/LongBench", "longbench_commit": COMMIT,
    "longbench_files": ["LongBench/eval.py", "LongBench/metrics.py"],
    "python": sys.version.split()[0],
    "packages": {p: md.version(p) for p in ["rouge", "fuzzywuzzy", "numpy", "jieba"]},
    "python_levenshtein": "absent",
    "date": datetime.date.today().isoformat(),
    "note": "texts are qvet's own; per-item scores via eval.py's loop body, totals via eval.scorer/scorer_e",
}
with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
    json.dump(expected, f, ensure_ascii=False, indent=1, allow_nan=False)
print("wrote", OUT, "max recon frames", MAX_FRAMES)
