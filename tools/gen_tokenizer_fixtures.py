#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/: expected token ids from the Hugging Face `tokenizers` library
(the oracle qvet's C tokenizer must match exactly), with provenance.

  python3 tools/gen_tokenizer_fixtures.py [--shared DIR]   (DIR: default $QV_SHARED_DIR, else ../shared)

1. The shared model's tokenizer (shared/models/qvet-tiny-llama/tokenizer.json, referenced by path
   and sha256, never copied): tricky texts, slices of shared/data/{eval,long}.txt (byte offsets),
   and for the whole eval.txt the id count and the sha256 of the ids as little-endian int32.
2. Small tokenizers BUILT here with `tokenizers` itself (trained on the text below, a few hundred
   tokens each), saved as <name>.tokenizer.json beside their cases: a Llama-2-style SentencePiece
   BPE with byte_fallback, a Metaspace variant, a GPT-2-style ByteLevel(use_regex=True) BPE
   ("a b" merges), its add_prefix_space variant, a Llama-3-style one with ignore_merges and added
   tokens with lstrip/rstrip/single_word, and Split-behaviour variants.
All encodings use add_special_tokens=False (a few "bos" cases use True); decodings use
skip_special_tokens=False. index.json lists the case files.
"""
import argparse
import datetime
import hashlib
import json
import os
import random
import struct
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "tokenizer")

# qvet's own training text for the small tokenizers (written for this script).
CORPUS = """\
qvet validates W4A8KV4 quantized inference: weights in four bits, activations in eight bits and
the key-value cache in four bits. The reference engine runs on the CPU in plain C; the kernels run
on the GPU. Every kernel is checked against the reference, case by case, and every eval reports a
confidence interval. It's a test suite, so it doesn't guess: when a file is malformed it says which
file, which tensor and which shape, and it exits with code 2. We've measured perplexity on 1,547,712
bytes of text; they're short paragraphs, and we'll keep them. I'm sure you'd agree.
SmoothAttention moves the outliers of the keys into the queries. Rotation spreads the massive
activations. Clipping trims the weights per group of 128. The calibration uses 64 samples of 512
tokens. Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 128 256 1024 65536 3.14159 2.71828 1e-5 0x7fff.
def perplexity(nll, n):
    return math.exp(sum(nll) / n)  # natural log
int main(int argc, char **argv) { return qv_cli_run(argc, argv); }
for (int i = 0; i < n; i++) { acc += a[i] * b[i]; }
The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX! Don't panic; it's fine.
Café, naïve, résumé, jalapeño, Straße. Ünïcödé text appears too, and — dashes — and “quotes”.
"""

TRICKY = [
    ("empty", ""),
    ("single_char", "a"),
    ("space_char", " a"),
    ("hello", "Hello world"),
    ("leading_spaces", "   leading spaces"),
    ("trailing_spaces", "trailing spaces   "),
    ("only_spaces", "     "),
    ("space_run_100", "x" + " " * 100 + "y"),
    ("multi_space", "a  b   c    d"),
    ("newline", "\n"),
    ("newlines", "line one\nline two\n\n\nline five"),
    ("crlf", "windows\r\nline\r\n\r\nend\r\n"),
    ("cr_only", "old\rmac\r"),
    ("tabs", "\tindented\t\ttabs\t"),
    ("mixed_ws", " \t \n \r\n\t  x \n"),
    ("vt_ff", "vertical\x0btab\x0cform feed"),
    ("nbsp_ideographic", "no\u00a0break\u3000ideographic\u2028line sep\u0085nel"),
    ("zero_width", "zero\u200bwidth\u200djoiner\ufeffbom"),
    ("contractions", "It's, don't, we're, I've, I'm, you'll, he'd, y'all"),
    ("contractions_upper", "IT'S DON'T WE'RE I'VE YOU'LL HE'D"),
    ("apostrophes", "Mr. O'Neil's 'quoted' rock'n'roll"),
    ("digits_run", "1234567890123"),
    ("numbers", "3.14159 1,000,000 -42 +7 0x1F 1e-5 2024-11-25"),
    ("digits_letters", "abc123def4567gh89"),
    ("code_python", "def f(x):\n\treturn x**2  # square\n\nprint(f(3))\n"),
    ("code_c", "int main(void) {\n    return a[i] != b[j] && c->d >= 0;\n}\n"),
    ("code_json", '{"key": [1, 2.5, null], "s": "v\\n"}'),
    ("punct_runs", "!!!!!!!!!! ???.... --- === ***"),
    ("url_email", "https://example.com/path?q=1&r=2#frag user@example.org"),
    ("latin_accents", "Café naïve résumé jalapeño Straße ẞ ß"),
    ("combining", "e\u0301 a\u0300 n\u0303 o\u0308\u0301 Z\u0351\u0352\u0353"),
    ("turkish", "İstanbul ıi Iİ"),
    ("ligatures", "ﬁ ﬂ Ǆ ǅ ǆ"),
    ("greek_cyrillic", "Αλφα βήτα Привет мир"),
    ("cjk_chinese", "我爱自然语言处理。"),
    ("cjk_japanese", "日本語のテキストです、カタカナも。"),
    ("hangul", "한국어 텍스트 입니다"),
    ("arabic_hebrew", "مرحبا بالعالم שלום עולם"),
    ("devanagari_thai", "नमस्ते दुनिया สวัสดีชาวโลก"),
    ("emoji", "I 👍🏽 this 😀😀 🎉!"),
    ("emoji_zwj", "family 👨‍👩‍👧‍👦 flag 🇫🇷🇩🇪 keycap 1️⃣"),
    ("math", "∑∫√π ≤ ≥ ≠ x² H₂O ½"),
    ("fullwidth", "ＡＢＣ１２３ ｈｅｌｌｏ"),
    ("smart_quotes", "“smart quotes” ‘single’ — em dash … ellipsis"),
    ("replacement_char", "bad \ufffd char \ufffd\ufffd"),
    ("escapes_literal", "\\xff\\xfe \\u0000 &#x1F600; %F0%9F"),
    ("byte_token_literal", "<0xFF><0x0A> <0x41>"),
    ("private_use_astral", "\ue000\U0001F9EA\U00010348\U0010FFFD"),
    ("control_chars", "a\x01b\x1fc\x7fd"),
    ("long_word", "Pneumonoultramicroscopicsilicovolcanoconiosis"),
    ("repeated", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("mixed_script", "qvet测试test테스트тест"),
]


POOL = ["a", "e", "the", "The", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "'s", "'T", "'re", "0", "42", "12345",
        ".", ",", "!?", "(", ")", "{", "}", "_", "-", "==", "é", "e\u0301", "ß", "İ", "Ω", "я", "中", "文", "日本",
        "한", "ع", "ש", "न", "ก", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "\u200b", "\ufffd", "\U00010348", "<", ">", "|", "<0x41>",
        "qvet", "token", "word", "x"]


def random_texts(seed, specials, n=40):
    """Seeded random mixtures of fragments (scripts, whitespace, digits, specials) for each tokenizer."""
    rng = random.Random(seed)
    pool = POOL + specials
    return [("random_%02d" % i, "".join(rng.choice(pool) for _ in range(rng.randint(1, 30)))) for i in range(n)]


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ids_sha256(ids):
    return hashlib.sha256(struct.pack("<%di" % len(ids), *ids)).hexdigest()


def cases_for(tok, texts):
    out = []
    for name, text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        out.append({"name": name, "text": text, "ids": ids, "decoded": dec, "roundtrip": dec == text})
    return out


def bos_cases(tok, texts):
    return [{"name": n, "text": t, "ids": tok.encode(t, add_special_tokens=True).ids} for n, t in texts]


def utf8_boundary(data, off):
    while 0 < off < len(data) and (data[off] & 0xC0) == 0x80:
        off += 1
    return off


def train(tok, vocab_size, special, alphabet, limit_alphabet):
    tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, initial_alphabet=alphabet,
                             limit_alphabet=limit_alphabet, show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines(), trainer=tr)
    return json.loads(tok.to_str())


def reload(d):
    """Round-trips a tokenizer.json dict through the library: what we save is what it loads."""
    s = json.dumps(d, ensure_ascii=False)
    return Tokenizer.from_str(s), s


def build_sentencepiece():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    d = train(tok, 420, ["<unk>", "<s>", "</s>"], list("abcdefghijklmnopqrstuvwxyz"), 60)
    # Llama-2 layout: <unk> <s> </s>, then the 256 byte tokens <0x00>..<0xFF>, then the BPE tokens
    vocab = d["model"]["vocab"]
    order = sorted(vocab, key=vocab.get)
    new = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        new["<0x%02X>" % b] = 3 + b
    for t in order:
        if t not in new:
            new[t] = len(new)
    d["model"]["vocab"] = new
    for a in d["added_tokens"]:
        a["id"] = new[a["content"]]
    d["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    return d


def build_metaspace(sp):
    d = json.loads(json.dumps(sp))
    d["normalizer"] = None
    d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    d["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
        {"type": "Fuse"}]}
    return d


def build_gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    d = train(tok, 400, ["<|endoftext|>"], pre_tokenizers.ByteLevel.alphabet(), 1000)
    # GPT-2's own file stores merges as "a b" strings: exercise that form here
    d["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in d["model"]["merges"]]
    return d


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def build_llama3():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    d = train(tok, 450, ["<|begin_of_text|>", "<|end_of_text|>"], pre_tokenizers.ByteLevel.alphabet(), 1000)
    # whole-word tokens with no merges leading to them: only ignore_merges emits them as one id
    vocab = d["model"]["vocab"]
    for w in ["Ġqvet", "Ġsmoothattention", "quantization"]:
        if w not in vocab:
            vocab[w] = max(vocab.values()) + 1
    tok, _ = reload(d)
    n = tok.get_vocab_size(with_added_tokens=True)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
                            AddedToken("<pad>", lstrip=False, rstrip=True, normalized=False, special=True)])
    tok.add_tokens([AddedToken("[tool]", single_word=True, normalized=True, special=False)])
    assert tok.get_vocab_size(with_added_tokens=True) == n + 3
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                                       special_tokens=[("<|begin_of_text|>", 0)])
    return json.loads(tok.to_str())


def split_variant(gpt2, name, split):
    d = json.loads(json.dumps(gpt2))
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.environ.get("QV_SHARED_DIR") or os.path.join(HERE, "..", "..", "shared"))
    args = ap.parse_args()
    shared = os.path.abspath(args.shared)
    os.makedirs(OUT, exist_ok=True)
    prov = {"generator": "tools/gen_tokenizer_fixtures.py", "tokenizers_version": tokenizers.__version__,
            "python": sys.version.split()[0], "date": datetime.date.today().isoformat(),
            "command": "python3 tools/gen_tokenizer_fixtures.py",
            "encode": "encode(text, add_special_tokens=False).ids (bos cases: add_special_tokens=True)",
            "decode": "decode(ids, skip_special_tokens=False)"}
    index = []

    def write(name, doc):
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        index.append(name + ".json")

    def save_built(name, d, extra):
        tok, s = reload(d)
        with open(os.path.join(OUT, name + ".tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(s)
        specials = [a["content"] for a in d.get("added_tokens", [])]
        texts = TRICKY + extra + random_texts(name, specials)
        write(name, {"provenance": dict(prov, built=name), "tokenizer": {"fixture": name + ".tokenizer.json"},
                     "cases": cases_for(tok, texts), "bos": bos_cases(tok, texts[:4] + extra[:2])})
        return tok

    # 1. the shared model
    rel = "models/qvet-tiny-llama/tokenizer.json"
    tpath = os.path.join(shared, rel)
    if os.path.exists(tpath):
        tok = Tokenizer.from_file(tpath)
        specials = [("special_bos", "<|begin_of_text|>Hello<|end_of_text|>"),
                    ("special_twice", "<|begin_of_text|><|begin_of_text|> x"),
                    ("special_partial", "<|begin_of_text <|end_of_text|>\n"),
                    ("special_spaced", "a <|end_of_text|> b"),
                    ("sp_tokens_literal", "x<s>y</s> <unk>")]
        texts = TRICKY + specials + random_texts("qvet_tiny_llama", ["<|begin_of_text|>", "<|end_of_text|>"])
        slices = []
        for fname, spans in [("data/eval.txt", [(0, 2000), (123457, 4000), (700001, 3000), (-2500, None)]),
                             ("data/long.txt", [(0, 3000), (55555, 5000)])]:
            data = open(os.path.join(shared, fname), "rb").read()
            for start, n in spans:
                a = utf8_boundary(data, start % len(data))
                b = len(data) if n is None else utf8_boundary(data, a + n)
                ids = tok.encode(data[a:b].decode("utf-8"), add_special_tokens=False).ids
                slices.append({"file": fname, "start": a, "end": b, "ids": ids})
        whole = []
        for fname in ["data/eval.txt"]:
            data = open(os.path.join(shared, fname), "rb").read()
            ids = tok.encode(data.decode("utf-8"), add_special_tokens=False).ids
            whole.append({"file": fname, "bytes": len(data), "sha256_file": hashlib.sha256(data).hexdigest(),
                          "count": len(ids), "sha256_ids_le32": ids_sha256(ids)})
        write("qvet_tiny_llama", {"provenance": prov,
                                  "tokenizer": {"shared": rel, "sha256": sha256_file(tpath)},
                                  "cases": cases_for(tok, texts), "bos": bos_cases(tok, texts[:4] + specials[:1]),
                                  "slices": slices, "whole": whole})
    else:
        print("warning: %s absent: shared-model fixtures not written" % tpath, file=sys.stderr)

    # 2. tokenizers built here
    sp = build_sentencepiece()
    save_built("sp_llama2", sp, [("sp_specials", "<s>Hello</s> <unk> x<s>y"), ("sp_unknown_chars", "漢字 ☃ 𝄞")])
    save_built("sp_metaspace", build_metaspace(sp), [("ms_specials", "<s> Hello</s>world"),
                                                     ("ms_leading", "▁already ▁marked")])
    gpt2 = build_gpt2()
    save_built("gpt2_bytelevel", gpt2, [("gpt2_eot", "end<|endoftext|>start <|endoftext|>")])
    g2p = json.loads(json.dumps(gpt2))
    g2p["pre_tokenizer"]["add_prefix_space"] = True
    g2p["decoder"]["add_prefix_space"] = True
    save_built("gpt2_prefix_space", g2p, [("gpt2p_eot", "a<|endoftext|>b")])
    save_built("llama3_ignore_merges", build_llama3(), [
        ("l3_whole_words", " qvet smoothattention quantization qvetx Qvet"),
        ("l3_mask_lstrip", "hello   <mask> world<mask>"),
        ("l3_pad_rstrip", "a<pad>   b <pad>\n\nc"),
        ("l3_single_word", "[tool] call x[tool]y [tool]_ ([tool])"),
        ("l3_single_word_unicode", "é[tool] 中[tool] 😀[tool] ²[tool] Ⅻ[tool] ١[tool] e\u0301[tool] [tool]\u200d [tool]\u00a0 ①[tool]"),
        ("l3_specials", "<|begin_of_text|>hi<|end_of_text|>")])
    for name, split in [
        ("split_removed", {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": False}),
        ("split_merged_prev", {"type": "Split", "pattern": {"Regex": "[,.;]"}, "behavior": "MergedWithPrevious",
                               "invert": False}),
        ("split_merged_next", {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False}),
        ("split_contiguous", {"type": "Split", "pattern": {"Regex": "\\p{P}"}, "behavior": "Contiguous", "invert": False}),
        ("split_invert", {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": True})]:
        save_built(name, split_variant(gpt2, name, split), [("punct_mix", "a,b.. c;; d ,e")])

    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"provenance": prov, "fixtures": index}, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, x)) for x in os.listdir(OUT))
    print("wrote %d case files to %s (%d bytes in all)" % (len(index), os.path.relpath(OUT), total))


if __name__ == "__main__":
    main()
