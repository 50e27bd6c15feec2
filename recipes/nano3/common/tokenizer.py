"""The tokenizer: train a byte-level BPE on the corpus, or take an existing one.

Trained tokenizers: digits split one per token (so " 19" is 'Ġ','1','9'), byte-level
(no unknown tokens), special tokens <|endoftext|>=0 <|pad|>=1 <|im_start|>=2
<|im_end|>=3. A tokenizer folder is what `PreTrainedTokenizerFast.save_pretrained`
writes (tokenizer.json, tokenizer_config.json, chat_template.jinja) and loads with
`AutoTokenizer.from_pretrained(folder)`; the data scripts only need tokenizer.json.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from .chat import CHAT_TEMPLATE, EOS, PAD, SPECIAL_TOKENS
from .errors import DataError

FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.decoder = decoders.ByteLevel()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    got = tok.get_vocab_size()
    if got < vocab_size:
        # BPE stops early on a corpus with too few distinct words; the model's vocab_size must be len(tokenizer).
        print(f"warning: BPE stopped at {got} tokens (asked {vocab_size}): the corpus has too few distinct "
              f"words; use a smaller tokenizer.vocab_size or more/larger sources", file=sys.stderr)
    return tok


def save(tok, folder: Path, model_max_length: int = 4096) -> None:
    """Write an HF tokenizer folder (with the chat template) for `tok` (a tokenizers.Tokenizer)."""
    from transformers import PreTrainedTokenizerFast

    missing = [t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None]
    if missing:
        raise DataError(f"tokenizer lacks special token(s) {', '.join(missing)}; "
                        f"add them or train one (tokenizer.path: null)")
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=list(SPECIAL_TOKENS[2:]), chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
    )
    folder.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(folder))


def tokenizer_file(path: str | Path, key: str) -> Path:
    """The tokenizer.json for a folder or file path; DataError naming `key` if absent."""
    p = Path(path)
    f = p / "tokenizer.json" if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"config key '{key}': no tokenizer at '{path}' (need a tokenizer.json or a folder with one)")
    return f


def load(path: str | Path, key: str = "tokenizer_path"):
    """(tokenizers.Tokenizer, its JSON text) from a folder or tokenizer.json."""
    from tokenizers import Tokenizer

    f = tokenizer_file(path, key)
    text = f.read_text()
    try:
        tok = Tokenizer.from_str(text)
    except Exception as e:
        raise DataError(f"config key '{key}': '{f}' is not a tokenizers JSON file ({str(e).splitlines()[0]})") from None
    missing = [t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None]
    if missing:
        raise DataError(f"config key '{key}': tokenizer '{f}' lacks special token(s) {', '.join(missing)}")
    return tok, text


def install(src: str | Path, folder: Path, key: str, model_max_length: int = 4096) -> None:
    """Put an existing tokenizer into `folder` as an HF tokenizer folder.

    A folder with tokenizer_config.json is copied as is; a bare tokenizer.json is wrapped
    (special tokens, chat template) and saved. Either way it must have the 4 special tokens.
    """
    tok, _ = load(src, key)
    p = Path(src)
    if p.is_dir() and (p / "tokenizer_config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (p / name).is_file():
                shutil.copyfile(p / name, folder / name)
    else:
        save(tok, folder, model_max_length)


_CACHE: dict[int, object] = {}


def from_json(text: str):
    """A tokenizers.Tokenizer from its JSON text, cached per process (Ray workers reuse it)."""
    from tokenizers import Tokenizer

    key = hash(text)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Tokenizer.from_str(text)
    return _CACHE[key]
