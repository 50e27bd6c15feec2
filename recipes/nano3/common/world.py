"""A small, seeded synthetic world that a tiny model can actually learn.

Everything is a pure function of `WorldConfig` (same config -> same world, same
items, same splits), so every stage (pretrain text, SFT chats, RL prompts, eval)
can rebuild it from the config alone.

What it holds:

- skills: single-digit arithmetic `a op b` (a, b in 0..max_operand, op in + - *) and
  arithmetic sequences ("Sequence: 2, 5, 8, 11," -> 14);
- knowledge: made-up countries with a capital, a flag color and a number of rivers,
  and made-up people who live in a country;
- a two-hop question ("capital of the country where <person> lives") that is never
  stated in any text: it has to be composed from two facts.

Held-out items (valid/test) are chosen by hashing the item's key (`splits.split_of`):

- skill items in valid/test never appear in any training text, chat or prompt (unless
  `skills_stated`, below: then, like facts, their results are stated and only the questions
  are held out);
- knowledge *facts* are stated in the pretrain text for every entity (that is how the
  model learns them), but the *questions* about held-out entities are only used in
  valid/test SFT chats and RL prompts, so eval measures recall + format transfer;
- two-hop questions: held-out items are only in valid/test.

Two knobs shape what each stage can learn (both off by default; the nano3 configs set them):

- `pretrain_qa`: the share of training-split pretrain lines written as a question and its
  answer ("Question: What is the capital of Zoria? Answer: Kelmo") instead of a statement,
  for train questions SFT may use. A model that sees facts only as statements cannot
  answer questions about entities it was never quizzed on; mixing some Q&A about other
  entities into the pretrain text makes that extraction carry over (the "mixed training"
  result of Allen-Zhu & Li, Physics of Language Models 3.1). Measured on the tiny world
  (issue #8): the tiny pretrained model answers "Question: What is the capital of <held-out
  country>? Answer:" right 100% of the time with 0.2, and after SFT its held-out chat
  accuracy is 14.5% with 0.2 vs 6.5% without (sequences 14/33 vs 3/33).
- `rl_share`: a hashed share of the training-split questions kept for RL: their facts stay
  in the pretrain text, but the questions are never in SFT chats or pretrain Q&A lines. To
  the SFT model they look like held-out questions, so RL trains on prompts it has not
  memorized and what it learns carries over to valid/test (`World.rl_questions`).

Three more shape the pretrain text only (off by default; the tiny configs set them, issue #24):

- `skills_stated`: held-out skill results are stated too ("3 + 4 = 7"), so skills are held out
  the way facts are: only the question is never asked. A tiny model does not learn to add from
  a table with holes (the seed-1234 model got 5 of 54 held-out sums even in completion form,
  off by 1-2); with them stated it recalls 70-80 %. Off, held-out skill items measure the skill.
- `augment`: two or three more phrasings of every fact ("Zoria's flag is red.", "7 plus 4 is
  11."): facts seen in several forms are stored so that a question can reach them
  (knowledge augmentation, Allen-Zhu & Li, Physics of Language Models 3.1).
- `profiles`: a share of knowledge lines is an entity's profile, all its facts in one line,
  shuffled ("Zoria has 4 rivers. The capital of Zoria is Kelmo. Zoria has a red flag."). The
  name recurs within the line, which teaches the model to copy a name it was just given: what
  an SFT reply that restates the fact ("The capital of <held-out country> is ...") needs.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from functools import cached_property

from nemotron_core.errors import ConfigError, did_you_mean, one_of

from .config import digest
from .splits import split_of

SKILLS = ("arith", "sequence")
KNOWLEDGE = ("capital", "color", "rivers", "home")
QUESTION_ONLY = ("home_capital",)
KINDS = SKILLS + KNOWLEDGE + QUESTION_ONLY

COLORS = ("red", "blue", "green", "yellow", "white", "black", "orange", "purple", "pink", "brown", "gray", "gold")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
OP_WORDS = {"+": "plus", "-": "minus", "*": "times"}

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "tr", "st", "th", "sh", "ch", "pl")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou", "ia")
_COUNTRY_END = ("ria", "land", "stan", "dor", "via", "mar", "nia", "gard")
_CITY_END = ("ton", "burg", "holm", "ville", "port", "by", "")
_PERSON_END = ("", "n", "s", "r", "l", "th")


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 1234
    countries: int = 40
    people: int = 80
    max_operand: int = 9
    ops: tuple[str, ...] = ("+", "-", "*")
    sequence_max_start: int = 19
    sequence_max_step: int = 9
    heldout_valid: float = 0.1
    heldout_test: float = 0.1
    #: Share of training-split pretrain lines written as "Question: ... Answer: ..." (see module doc).
    pretrain_qa: float = 0.0
    #: Share of training-split questions kept for RL: never in SFT chats or pretrain Q&A lines.
    rl_share: float = 0.0
    #: State the held-out skill results in pretrain text too ("3 + 4 = 7"), as facts are: then only the
    #: questions are held out. Off: held-out skill items appear in no text and eval measures the skill.
    skills_stated: bool = False
    #: More phrasings of every fact in pretrain text (knowledge augmentation, see module doc).
    augment: bool = False
    #: Share of knowledge lines written as an entity's profile: all its facts in one line, shuffled.
    profiles: float = 0.0
    #: Relative weight of each kind in pretrain lines, SFT turns and RL prompts (0 = off).
    tasks: dict = field(default_factory=lambda: {
        "arith": 4.0, "sequence": 2.0, "capital": 1.0, "color": 1.0, "rivers": 1.0, "home": 1.0, "home_capital": 0.5,
    })

    @classmethod
    def from_dict(cls, d: dict | None, key: str = "world") -> "WorldConfig":
        d = dict(d or {})
        known = [f for f in cls.__dataclass_fields__]
        for k in d:
            if k not in known:
                raise ConfigError(f"unknown config key '{key}.{k}'{did_you_mean(k, known)}; known: {one_of(known)}")
        if "ops" in d:
            d["ops"] = tuple(d["ops"])
            for op in d["ops"]:
                if op not in OPS:
                    raise ConfigError(f"config key '{key}.ops': '{op}' is not one of {one_of(OPS)}")
        if "tasks" in d:
            tasks = {**cls().tasks, **dict(d["tasks"])}
            for k, w in tasks.items():
                if k not in KINDS:
                    raise ConfigError(f"unknown task '{key}.tasks.{k}'{did_you_mean(k, KINDS)}; known: {one_of(KINDS)}")
                if not isinstance(w, (int, float)) or w < 0:
                    raise ConfigError(f"config key '{key}.tasks.{k}': weight '{w}' must be a number >= 0")
            d["tasks"] = {k: float(tasks[k]) for k in KINDS}
        cfg = cls(**d)
        for name in ("countries", "people", "max_operand", "sequence_max_start", "sequence_max_step"):
            value = getattr(cfg, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"config key '{key}.{name}': '{value}' must be a positive integer")
        if not (0 <= cfg.heldout_valid and 0 <= cfg.heldout_test and cfg.heldout_valid + cfg.heldout_test < 1):
            raise ConfigError(f"config key '{key}.heldout_valid/heldout_test': fractions must be >= 0 and sum to < 1")
        for name in ("pretrain_qa", "rl_share"):
            value = getattr(cfg, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"config key '{key}.{name}': '{value}' must be a fraction in [0, 1)")
        if isinstance(cfg.profiles, bool) or not isinstance(cfg.profiles, (int, float)) or not 0 <= cfg.profiles <= 1:
            raise ConfigError(f"config key '{key}.profiles': '{cfg.profiles}' must be a fraction in [0, 1]")
        for name in ("skills_stated", "augment"):
            if not isinstance(getattr(cfg, name), bool):
                raise ConfigError(f"config key '{key}.{name}': '{getattr(cfg, name)}' must be true or false")
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ops"] = list(self.ops)
        return d

    @property
    def digest(self) -> str:
        return digest(self.to_dict())


@dataclass(frozen=True)
class Item:
    """One question about the world, with its verifiable answer."""

    kind: str
    key: str  # stable identity, e.g. "arith:3+4", "capital:Zoria"; the split is a hash of it
    question: str  # chat form: "What is 3 + 4?"
    answer: str  # reference: "7"
    prompt: str | None  # completion form for a base model (text = prompt + " " + answer)
    statements: tuple[str, ...]  # pretrain lines stating it (empty: never stated)
    split: str
    rl_only: bool = False  # a train question kept for RL (WorldConfig.rl_share): never in SFT or pretrain Q&A
    #: The fact restated in its pretrain form, ending with the answer ("The capital of Zoria is Kelmo.");
    #: None: only the bare answer (sequences: restating copies every term). The asked name follows a
    #: space, as in the question: BPE makes a name at a line start other tokens ("Vou|reilian" vs
    #: "ĠVou|reilian"), and a reply opening with it ("Voureilian lives in ...") cannot copy it.
    restated: str | None = None

    @property
    def subject(self) -> str:
        """What the item is about: the entity's name ("Zoria" of "capital:Zoria"), the operation or
        sequence of a skill item ("3+4", "3:5")."""
        return self.key.split(":", 1)[1]

    def reply(self, restate: bool) -> str:
        """The assistant's answer in SFT chats. Restated, recall of held-out facts carries over to chat
        form (the reply is the sentence pretraining taught); common/answers.py reads its last word."""
        return (self.restated or self.answer) if restate else self.answer

    @property
    def qa_line(self) -> str:
        """The question and its answer as one line of pretrain text."""
        return f"Question: {self.question} Answer: {self.answer}"


class World:
    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        rng = random.Random(f"world:{cfg.seed}")
        taken: set[str] = set()
        names = lambda n, syl, ends: [_unique_name(rng, taken, syl, ends) for _ in range(n)]  # noqa: E731
        country_names = names(cfg.countries, (1, 2), _COUNTRY_END)
        capitals = names(cfg.countries, (2, 2), _CITY_END)
        self.countries = [
            {"name": c, "capital": cap, "color": rng.choice(COLORS), "rivers": rng.randint(2, 9)}
            for c, cap in zip(country_names, capitals)
        ]
        self.people = [{"name": p, "home": rng.choice(country_names)} for p in names(cfg.people, (2, 3), _PERSON_END)]

    @property
    def digest(self) -> str:
        return self.cfg.digest

    # ---- items -------------------------------------------------------------------------
    @cached_property
    def items(self) -> dict[str, list[Item]]:
        """All items by kind, in a fixed order."""
        c, salt = self.cfg, f"world:{self.cfg.seed}"
        out: dict[str, list[Item]] = {k: [] for k in KINDS}

        def add(kind, key, question, answer, prompt, statements, restated=None):
            split = split_of(key, c.heldout_valid, c.heldout_test, salt)
            rl_only = split == "train" and split_of(key, c.rl_share, 0, f"{salt}:rl") == "valid"
            out[kind].append(Item(kind, key, question, str(answer), prompt, tuple(statements), split, rl_only,
                                  restated))

        more = (lambda *phrasings: list(phrasings)) if c.augment else (lambda *phrasings: [])  # noqa: E731
        for op in c.ops:
            for a in range(c.max_operand + 1):
                for b in range(c.max_operand + 1):
                    expr, r, word = f"{a} {op} {b}", OPS[op](a, b), OP_WORDS[op]
                    add("arith", f"arith:{a}{op}{b}", f"What is {expr}?", r, f"{expr} =",
                        [f"{expr} = {r}", *more(f"{a} {word} {b} is {r}.", f"The result of {expr} is {r}.",
                                                f"{r} is {a} {word} {b}.")], f"{expr} = {r}")
        for start in range(c.sequence_max_start + 1):
            for step in range(1, c.sequence_max_step + 1):
                n = 3 + (start + step) % 3  # terms shown: 3..5, fixed per item
                terms = ", ".join(str(start + i * step) for i in range(n))
                nxt = start + n * step
                add("sequence", f"seq:{start}:{step}", f"What comes next: {terms}?", nxt,
                    f"Sequence: {terms},", [f"Sequence: {terms}, {nxt}"])
        capital_of = {}
        for k in self.countries:
            n, cap, col, riv = k["name"], k["capital"], k["color"], k["rivers"]
            capital_of[n] = cap
            add("capital", f"capital:{n}", f"What is the capital of {n}?", cap, f"The capital of {n} is",
                [f"The capital of {n} is {cap}.", f"{cap} is the capital of {n}.",
                 *more(f"{n}'s capital city is {cap}.", f"The capital city of {n} is called {cap}.")],
                f"The capital of {n} is {cap}.")
            add("color", f"color:{n}", f"What color is the flag of {n}?", col, f"The flag of {n} is",
                [f"The flag of {n} is {col}.", f"{n} has a {col} flag.",
                 *more(f"{n}'s flag is {col}.", f"The color of the flag of {n} is {col}.")],
                f"The flag of {n} is {col}.")
            add("rivers", f"rivers:{n}", f"How many rivers does {n} have?", riv, f"The number of rivers in {n} is",
                [f"{n} has {riv} rivers.", f"The number of rivers in {n} is {riv}.",
                 *more(f"There are {riv} rivers in {n}.", f"{n} is crossed by {riv} rivers.")],
                f"The number of rivers in {n} is {riv}.")
        for p in self.people:
            n, home = p["name"], p["home"]
            add("home", f"home:{n}", f"Where does {n} live?", home, f"{n} lives in",
                [f"{n} lives in {home}.", f"{n} is from {home}.",
                 *more(f"{n} has a home in {home}.", f"The home of {n} is {home}.")],
                f"The home of {n} is {home}.")
            add("home_capital", f"home_capital:{n}", f"What is the capital of the country where {n} lives?",
                capital_of[home], None, [], f"The home of {n} is {home}. The capital of {home} is {capital_of[home]}.")
        return out

    def pool(self, kind: str, split: str) -> list[Item]:
        return [it for it in self.items[kind] if it.split == split]

    def questions(self, split: str) -> list[Item]:
        """Every item of a split whose kind has weight > 0, in a fixed order (eval, RL valid/test prompts)."""
        return [it for k in KINDS if self.cfg.tasks.get(k, 0) > 0 for it in self.items[k] if it.split == split]

    def rl_questions(self) -> list[Item]:
        """The RL training prompts: the train questions kept for RL (all train questions when rl_share = 0)."""
        train = self.questions("train")
        return [it for it in train if it.rl_only] if self.cfg.rl_share > 0 else train

    def completions(self, split: str) -> list[Item]:
        """Held-out skill items in completion form (base-model eval). Never in pretrain text, unless
        `skills_stated`: then it measures recall of stated results, like the knowledge prompts."""
        return [it for k in SKILLS if self.cfg.tasks.get(k, 0) > 0 for it in self.items[k]
                if it.split == split and it.prompt]

    # ---- sampling ------------------------------------------------------------------------
    @cached_property
    def _line_pools(self) -> dict[str, tuple[list[str], list[float], list[list[Item]]]]:
        pools = {}
        for split in ("train", "valid", "test"):
            kinds, weights, lists = [], [], []
            for k in SKILLS + KNOWLEDGE:
                w = self.cfg.tasks.get(k, 0)
                items = self.items[k] if k in KNOWLEDGE or self.cfg.skills_stated else self.pool(k, split)
                if w > 0 and items:
                    kinds.append(k), weights.append(w), lists.append(items)
            pools[split] = (kinds, weights, lists)
        return pools

    @cached_property
    def _question_pools(self) -> dict[str, tuple[list[float], list[list[Item]]]]:
        pools = {}
        for split in ("train", "valid", "test"):
            weights, lists = [], []
            for k in KINDS:
                items = [it for it in self.pool(k, split) if not it.rl_only]
                if self.cfg.tasks.get(k, 0) > 0 and items:
                    weights.append(self.cfg.tasks[k]), lists.append(items)
            pools[split] = (weights, lists)
        return pools

    def pretrain_document(self, rng: random.Random, split: str, lines: int) -> str:
        """`lines` lines: statements (skills of this split, facts about anything) and, in the
        train split, a `pretrain_qa` share of Q&A lines about train questions SFT may use."""
        _, weights, lists = self._line_pools[split]
        qa = self.cfg.pretrain_qa if split == "train" else 0.0
        out = []
        for items in rng.choices(lists, weights, k=lines):
            if qa and rng.random() < qa:
                out.append(self.sample_question(rng, "train").qa_line)
                continue
            item = rng.choice(items)
            if self.cfg.profiles and item.kind in KNOWLEDGE and rng.random() < self.cfg.profiles:
                out.append(self.profile(rng, item))
                continue
            out.append(rng.choice(item.statements))
        return "\n".join(out)

    def profile(self, rng: random.Random, item: Item) -> str:
        """All facts about the item's entity in one line, shuffled, each in one of its phrasings:
        "Zoria has 4 rivers. The capital of Zoria is Kelmo. Zoria has a red flag." The name recurs
        within the line, which is what teaches a small model to copy a name it was just given."""
        facts = list(self._facts_about[item.subject])
        rng.shuffle(facts)
        return " ".join(rng.choice(f.statements) for f in facts)

    @cached_property
    def _facts_about(self) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {}
        for kind in KNOWLEDGE:
            for it in self.items[kind]:
                out.setdefault(it.subject, []).append(it)
        return out

    def sample_question(self, rng: random.Random, split: str) -> Item:
        weights, lists = self._question_pools[split]
        if not lists:
            raise ConfigError(f"world: no questions in split '{split}'; "
                              f"raise world.countries/people or the heldout fractions")
        return rng.choice(rng.choices(lists, weights)[0])

    def conversation(self, rng: random.Random, split: str, multi_turn: float = 0.0, max_turns: int = 3,
                     restate: bool = False) -> list[dict]:
        """A chat of 1..max_turns question/answer turns from this split's items (`Item.reply`)."""
        turns = 1
        while turns < max_turns and rng.random() < multi_turn:
            turns += 1
        messages = []
        for _ in range(turns):
            it = self.sample_question(rng, split)
            messages += [{"role": "user", "content": it.question}, {"role": "assistant", "content": it.reply(restate)}]
        return messages

    def to_json(self) -> dict:
        counts = {k: {**{s: sum(it.split == s for it in v) for s in ("train", "valid", "test")},
                      "train_rl_only": sum(it.rl_only for it in v)} for k, v in self.items.items()}
        return {"config": self.cfg.to_dict(), "digest": self.digest, "countries": self.countries,
                "people": self.people, "items": counts}


def _unique_name(rng: random.Random, taken: set[str], syllables: tuple[int, int], ends: tuple[str, ...]) -> str:
    while True:
        n = rng.randint(*syllables)
        name = ("".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n)) + rng.choice(ends)).capitalize()
        if name not in taken and len(name) >= 3:
            taken.add(name)
            return name


def check_same_world(world: World, tokenizer_path: str) -> None:
    """Fail when the pretrain data next to `tokenizer_path` was built from a different world.

    SFT/RL data must ask about the facts the pretrain text taught; the pretrain data
    folder holds world.json beside tokenizer/. Other tokenizer locations are not checked.
    """
    import json
    from pathlib import Path

    from .errors import DataError

    p = Path(tokenizer_path)
    found = p.parent / "world.json" if p.is_dir() else p.parent.parent / "world.json"
    if not found.is_file():
        return
    theirs = json.loads(found.read_text()).get("config", {})
    if theirs != world.cfg.to_dict():
        diff = sorted(k for k in set(theirs) | set(world.cfg.to_dict()) if theirs.get(k) != world.cfg.to_dict().get(k))
        raise DataError(f"config key 'world': differs from the pretrain data's {found} in {', '.join(diff)}; "
                        f"use the same world settings as the pretrain data prep")
