"""Prompt understanding by hand: concept recall and CJK leakage, before and after issue 13, side by side.

    python -m bench.prompt [--verbose]

Runs :data:`CASES` — descriptions written for this benchmark, not the
lexicon's own examples — through :func:`engine.prompt.build_prompt` twice:
"before" (``understanding="lexicon"``: greedy longest match against the
lexicon, unknown Chinese passed through — the behaviour before issue 13) and
"after" (the default: jieba segmentation, CC-CEDICT, Cantonese, counts,
negation, filler words and typos). Nothing else differs between the columns.

* **concept recall**: of all the concepts the descriptions ask for, the share
  found in the positive prompt (each concept is a regular expression of
  accepted English renderings; a negated concept counts when it is in the
  negative prompt and *not* in the positive one);
* **CJK leakage**: prompts whose positive side holds any CJK character;
* **filler leaks**: prompts that kept an English filler word (um, like, basically, kinda...).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.prompt import STYLE_TAGS, build_prompt  # noqa: E402

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


def score(case: Case, understanding: str) -> tuple[Score, str, str, list[str]]:
    """Build the prompt of ``case`` and score it; also return the user part, the negated part and the misses."""
    started = time.perf_counter()
    prompt = build_prompt(case.text, understanding=understanding)
    seconds = time.perf_counter() - started
    user = prompt.positive.removesuffix(STYLE_TAGS).removesuffix(", ").lower()
    negative = prompt.negative.lower()
    missed = [c for c in case.concepts if not re.search(c, user)]
    missed += [f"-{c}" for c in case.negated if not re.search(rf"\b{c}\b", negative) or re.search(rf"\b{c}\b", user)]
    total = len(case.concepts) + len(case.negated)
    result = Score(total - len(missed), total, int(bool(_CJK.search(prompt.positive))), int(bool(_FILLERS.search(user))), 1, seconds)
    return result, user, negative.split(", ")[-1], missed


def main() -> None:
    """Score every case before and after; print the per-group table and, with --verbose, every prompt."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="print every prompt and what it missed")
    args = parser.parse_args()
    build_prompt("warm up 预热", understanding="full")  # loads jieba and CC-CEDICT once, outside the timings
    columns = ("lexicon", "full")
    groups: dict[str, dict[str, Score]] = {}
    for case in CASES:
        for column in columns:
            result, user, negated, missed = score(case, column)
            groups.setdefault(case.group, {c: Score() for c in columns})[column].add(result)
            groups.setdefault("all", {c: Score() for c in columns})[column].add(result)
            if args.verbose:
                flag = "  ok " if not missed else f"  miss {', '.join(missed)}"
                print(f"[{column:7}] {case.text}\n          + {user}\n          - {negated}\n        {flag}")
    print(f"{len(CASES)} descriptions; before = understanding='lexicon' (pre-issue-13), after = the default\n")
    print(f"{'group':7}{'n':>4}  {'concept recall':>21}  {'CJK leaks':>15}  {'filler leaks':>15}  {'ms / prompt':>15}")
    print(f"{'':11}  {'before':>10}{'after':>11}  {'before':>7}{'after':>8}  {'before':>7}{'after':>8}  {'before':>7}{'after':>8}")
    for name in ("zh", "yue", "en", "mixed", "all"):
        before, after = groups[name]["lexicon"], groups[name]["full"]
        print(
            f"{name:7}{before.prompts:>4}  {before.found / before.total:>10.2f}{after.found / after.total:>11.2f}  "
            f"{before.cjk:>7}{after.cjk:>8}  {before.filler:>7}{after.filler:>8}  "
            f"{1000 * before.seconds / before.prompts:>7.2f}{1000 * after.seconds / after.prompts:>8.2f}"
        )


if __name__ == "__main__":
    main()
