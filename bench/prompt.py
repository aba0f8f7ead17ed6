"""Prompt understanding by hand: concept recall and CJK leakage, one commit beside another.

    python -m bench.prompt [--verbose] [--before REV [--after REV]]

Runs :data:`CASES` — descriptions written for this benchmark, not the
lexicon's own examples — through :func:`engine.language.prompt.build_prompt` and scores:

* **concept recall**: of all the concepts the descriptions ask for, the share
  found in the positive prompt (each concept is a regular expression of
  accepted English renderings; a negated concept counts when it is in the
  negative prompt and *not* in the positive one);
* **CJK leakage**: prompts whose positive side holds any CJK character;
* **filler leaks**: prompts that kept an English filler word (um, like, basically, kinda...).

``--before REV`` scores the code of commit ``REV`` the same way and prints it
beside the working tree (or beside commit ``--after REV``): each commit is
checked out with ``git worktree`` in a temporary directory and its
``build_prompt`` runs in a fresh process (this file's cases and scoring, that
tree's code), so nothing but the code differs between the columns. Every tree
loads its dictionaries before the clock starts. The result that chose the
current reading is in ``docs/decisions/prompt-reading.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_FILLERS = re.compile(r"\b(um+|uh+|erm|basically|kinda|sorta|you know|literally|actually)\b")


@dataclass(frozen=True)
class Case:
    """A description, the concepts its prompt must carry (regexes) and those that must be negated."""

    text: str
    concepts: tuple[str, ...]
    negated: tuple[str, ...] = ()
    group: str = "zh"


CASES: tuple[Case, ...] = (
    # Mandarin, typed: words outside the lexicon, compounds, counts, negation, modifiers.
    Case("宇航员在月球上骑马", ("astronaut", r"\bmoon", "riding", "horse")),
    Case("熊猫在竹林里吃竹子", ("panda", "bamboo", "eating")),
    Case("雪人站在雪地里", ("snowman", r"\bsnow\b", "standing")),
    Case("一只狐狸在森林里睡觉", ("fox", "forest", "sleeping")),
    Case("两只白猫在屋顶上", (r"two white cats", "rooftop")),
    Case("三匹马在草原上奔跑", (r"three horses", "meadow|grassland|prairie|steppe", "running")),
    Case("一个戴着草帽的农民在稻田里", ("farmer|peasant", "straw hat", r"rice|paddy")),
    Case("穿旗袍的女人在上海的街头", ("woman", "qipao", "shanghai", "street")),
    Case("不要帽子的小女孩在花园里", ("little girl", "garden"), ("hat",)),
    Case("没有翅膀的龙在云上", ("dragon", "cloud"), ("wings",)),
    Case("一只猫头鹰在月光下", (r"\bowl", "moonlight")),
    Case("消防员抱着一只小猫", ("firefighter|fireman", "kitten", "hugging|holding")),
    Case("医生在医院里看书", ("doctor", "hospital", "reading")),
    Case("厨师在厨房里做蛋糕", (r"\bchef|\bcook", "kitchen", "cake")),
    Case("海豚在海里跳", ("dolphin", r"\bsea\b", "jumping")),
    Case("长颈鹿在沙漠里", ("giraffe", "desert")),
    Case("一个小男孩放风筝", ("little boy", "kite", "flying")),
    Case("金鱼在鱼缸里游泳", ("goldfish", "fish ?tank|aquarium|fishbowl", "swimming")),
    Case("女孩和她的蝴蝶在花田里", ("girl", "butterfl", "flower field")),
    Case("戴眼镜的老师在黑板前写字", ("teacher", "glasses", "blackboard", "writing")),
    Case("四个男孩在踢足球", ("four boys", "soccer|football", "playing|kicking")),
    Case("蓝眼睛的白猫和黑色的狗", ("blue eyes", "white cat", "black dog")),
    Case("吸血鬼在古老的城堡里", ("vampire", "ancient|old", "castle")),
    Case("下雪的冬天有一座小木屋", (r"\bsnow", "winter", "cabin|hut|log house|wooden house")),
    Case("一个骑自行车的邮递员", ("postman|mailman|courier|mail carrier", "riding a bicycle|cycling|bike")),
    Case("穿着盔甲的狮子", ("lion", "armor|armour")),
    Case("两个穿和服的女孩在櫻花樹下", ("two girls", "kimono", "cherry blossom")),
    # Cantonese.
    Case("一個靚仔喺海邊踩單車", ("handsome young man|handsome guy|handsome boy", "beach", "riding a bicycle"), group="yue"),
    Case("佢啲貓喺度瞓覺", ("cats", "sleeping"), group="yue"),
    Case("冇戴眼鏡嘅女仔食緊雪糕", ("girl", "eating", "ice cream"), ("glasses",), group="yue"),
    Case("兩隻狗仔喺公園度跑", ("two (dogs|puppies)", "park", "running"), group="yue"),
    Case("我想要一個細路女拎住氣球", ("little girl", "balloon", "holding"), group="yue"),
    # English, as people say and type it.
    Case("um a girl with like pink hair basically sitting in a cafe", ("girl", "pink hair", "sitting", "cafe"), group="en"),
    Case("a fox spirit with nine tails kinda floating over a lake", ("fox spirit", "nine tails", "floating", "lake"), group="en"),
    Case("a gril with bleu hair in a forrest", ("girl", "blue hair", "forest"), group="en"),
    Case("a dragon without wings flying over a volcano", ("dragon", "flying", "volcano"), ("wings",), group="en"),
    Case("a samurai in the rain, no hat", ("samurai", "rain"), ("hat",), group="en"),
    Case("three kittens playing with yarn", ("three kittens", "yarn", "playing"), group="en"),
    Case("an astronaut riding a horse on the moon", ("astronaut", "riding", "horse", "moon"), group="en"),
    Case("a white cat and a black dog on a sofa", ("white cat", "black dog", "sofa"), group="en"),
    Case("a witch with a black cat, you know, on a broom", ("witch", "black cat", "broom"), group="en"),
    Case("a knight holding a shield and a sword", ("knight", "shield", "sword", "holding"), group="en"),
    # Mixed.
    Case("一个女孩 wearing a red scarf 在雪中", ("girl", "red scarf", r"\bsnow"), group="mixed"),
    Case("a panda 在竹林里 eating 竹子", ("panda", "bamboo", "eating"), group="mixed"),
)


@dataclass(frozen=True)
class Built:
    """What one tree's ``build_prompt`` made of a case: the user's part of the positive prompt, the negative prompt."""

    user: str
    positive: str
    negative: str
    seconds: float


@dataclass
class Score:
    """Totals for one column."""

    found: int = 0
    total: int = 0
    cjk: int = 0
    filler: int = 0
    prompts: int = 0
    seconds: float = 0.0

    def add(self, other: Score) -> None:
        self.found += other.found
        self.total += other.total
        self.cjk += other.cjk
        self.filler += other.filler
        self.prompts += other.prompts
        self.seconds += other.seconds


def score(case: Case, built: Built) -> tuple[Score, list[str]]:
    """Score the prompt built for ``case``; also return the concepts it missed (a negated one as ``-concept``)."""
    user, negative = built.user.lower(), built.negative.lower()
    missed = [c for c in case.concepts if not re.search(c, user)]
    missed += [f"-{c}" for c in case.negated if not re.search(rf"\b{c}\b", negative) or re.search(rf"\b{c}\b", user)]
    total = len(case.concepts) + len(case.negated)
    cjk, filler = int(bool(_CJK.search(built.positive))), int(bool(_FILLERS.search(user)))
    return Score(total - len(missed), total, cjk, filler, 1, built.seconds), missed


def _build_here(tree: str) -> None:
    """``--build TREE``: build every case's prompt with the ``engine`` of ``TREE``; print them as one JSON list."""
    sys.path.insert(0, tree)
    from engine.language.prompt import STYLE_TAGS, build_prompt

    build_prompt("warm up 预热")  # loads the dictionaries once, outside the timings
    built = []
    for case in CASES:
        started = time.perf_counter()
        prompt = build_prompt(case.text)
        seconds = time.perf_counter() - started
        user = prompt.positive.removesuffix(STYLE_TAGS).removesuffix(", ")
        built.append(Built(user, prompt.positive, prompt.negative, seconds).__dict__)
    print(json.dumps(built, ensure_ascii=False))


def _built_by(tree: Path) -> list[Built]:
    """Every case's prompt as the code in ``tree`` builds it, in a fresh process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--build", str(tree)]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the prompts in {tree} failed:\n{done.stderr[-3000:]}")
    return [Built(**fields) for fields in json.loads(done.stdout.strip().splitlines()[-1])]


@contextmanager
def _checked_out(revision: str) -> Iterator[Path]:
    """Commit ``revision`` of this repository, checked out in a temporary ``git worktree`` (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="voice2anime-bench-prompt-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), revision], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def _short(revision: str) -> str:
    """The abbreviated commit id of ``revision``."""
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _columns(before: str | None, after: str | None) -> dict[str, list[Built]]:
    """Each column's prompts: commit ``before`` (if any), then commit ``after`` or the working tree."""
    columns: dict[str, list[Built]] = {}
    for revision in (before, after):
        if revision is not None:
            with _checked_out(revision) as tree:
                columns[_short(revision)] = _built_by(tree)
    if after is None:
        columns["now"] = _built_by(ROOT)
    return columns


def _table(columns: dict[str, list[Built]], verbose: bool) -> None:
    """Score every column; print the per-group table and, with ``verbose``, every prompt."""
    groups: dict[str, dict[str, Score]] = {}
    for index, case in enumerate(CASES):
        for label, built in columns.items():
            result, missed = score(case, built[index])
            for group in (case.group, "all"):
                groups.setdefault(group, {c: Score() for c in columns})[label].add(result)
            if verbose:
                flag = "  ok " if not missed else f"  miss {', '.join(missed)}"
                negated = built[index].negative.lower().split(", ")[-1]
                print(f"[{label:7}] {case.text}\n          + {built[index].user.lower()}\n          - {negated}\n        {flag}")
    labels = list(columns)
    width = 8 * len(labels)
    print(f"{len(CASES)} descriptions; columns: {', '.join(labels)}\n")
    print(f"{'group':7}{'n':>4}  {'concept recall':>{width}}  {'CJK leaks':>{width}}  {'filler leaks':>{width}}  {'ms / prompt':>{width}}")
    print(" " * 11 + ("  " + "".join(f"{label:>8}" for label in labels)) * 4)
    for name in ("zh", "yue", "en", "mixed", "all"):
        scores = [groups[name][label] for label in labels]
        print(
            f"{name:7}{scores[0].prompts:>4}  "
            + "".join(f"{s.found / s.total:>8.2f}" for s in scores) + "  "
            + "".join(f"{s.cjk:>8}" for s in scores) + "  "
            + "".join(f"{s.filler:>8}" for s in scores) + "  "
            + "".join(f"{1000 * s.seconds / s.prompts:>8.2f}" for s in scores)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="print every prompt and what it missed")
    parser.add_argument("--before", metavar="REV", help="also score commit REV (e.g. the one before a change), side by side")
    parser.add_argument("--after", metavar="REV", help="with --before: score commit REV instead of the working tree")
    parser.add_argument("--build", metavar="TREE", help=argparse.SUPPRESS)  # one tree's prompts, in its own process
    args = parser.parse_args()
    if args.build:
        _build_here(args.build)
        return
    if args.after and not args.before:
        parser.error("--after needs --before")
    _table(_columns(args.before, args.after), args.verbose)


if __name__ == "__main__":
    main()
