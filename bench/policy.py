"""The content policy's second check (engine/policy/classifier.py), measured honestly, by hand.

    python -m bench.policy              # figures
    python -m bench.policy --verbose    # ... and the harmless texts that score highest, the probes missed
    python -m bench.policy --write      # ... and write the thresholds to engine/policy/thresholds.tsv

**False refusals**, each text scored as the check reads it (without what the
term list found in it, its exceptions and the classifier's own):

* *our harmless descriptions* (tests/test_policy.py's ``harmless_descriptions()``:
  the prompt benchmark, the voice fixtures, the tests' ``/anime`` texts, every
  word and rendering of the lexicon). The lexicon's are training data too, so
  they are scored with k-fold cross-validation: each by a model trained
  without it (nor any text that normalises like it); the others were never
  trained on and are scored by the full model;
* *our harmless sentences*: those of engine/policy/exemplars.tsv of three words
  or more (five Chinese characters), near-misses most of them, cross-validated
  the same way. The descriptions above are mostly single words: a sentence has
  more windows, and more chances to be refused;
* *held-out harmless probes* (engine/policy/probes.tsv): never trained on, and
  not used to choose anything.

Each level's threshold is the least score that refuses at most 0.5 % of the
descriptions and at most 2 % of the sentences; ``--write`` writes it.

**Recall** on the held-out probes, at ``strict`` (and at ``standard`` for the
categories that refuse there):

* *round* probes: the words the adversarial round found outside the term list.
  They are in the list now, so the "before" list is today's without the terms
  they hit, and the model measured on them — the *held-out model* — is trained
  on that list, without any example those terms hit, its thresholds chosen the
  same way;
* *written* probes: misspellings and variants in the same spirit, never in any
  training data (checked below), so the shipped model is measured on them too.

For each: the classifier alone, the list alone (before / now), and the list
with the classifier behind it (as the product checks: each through the English
prompt made of it too).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from engine.policy.classifier import (  # noqa: E402
    CATEGORIES,
    HARMLESS,
    LABELS,
    THRESHOLDS_FILE,
    Example,
    SecondCheck,
    TextClassifier,
    group_fold,
    group_of,
    training_examples,
)
from engine.policy.levels import Level  # noqa: E402
from engine.policy.text import PromptChecker, TermList, normalise  # noqa: E402

PROBES_FILE = ROOT / "engine" / "policy" / "probes.tsv"
#: The share of our harmless descriptions, and of our harmless sentences, a threshold may refuse.
BUDGETS = {"descriptions": 0.005, "sentences": 0.02}
LEVELS = (Level.STRICT, Level.STANDARD)
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Probe:
    """A held-out description: one the policy must refuse (a category), or a harmless one."""

    category: str
    origin: str
    text: str


def read_probes(path: Path = PROBES_FILE) -> list[Probe]:
    """``category TAB origin TAB text`` lines."""
    probes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            category, origin, text = line.split("\t")
            probes.append(Probe(category, origin, text))
    return probes


def harmless_descriptions() -> list[str]:
    """Every harmless description of ours (the set tests/test_policy.py checks)."""
    from tests.test_policy import harmless_descriptions

    return [text for texts in harmless_descriptions().values() for text in texts]


def harmless_sentences(examples: Sequence[Example]) -> list[str]:
    """The harmless training examples of three words or more (five Chinese characters or more)."""
    return [
        e.text
        for e in examples
        if e.label == HARMLESS and (len(e.text.split()) >= 3 or len(_CJK.findall(e.text)) >= 5)
    ]


def described(text: str) -> tuple[str, str, str]:
    """(description, English prompt, what it leaves out) as the conversation checks them (the bare text when nothing parses)."""
    from engine.errors import UserError
    from engine.language.prompt import NEGATIVE_PROMPT, build_prompt

    try:
        prompt = build_prompt(text)
    except UserError:
        return text, "", ""
    negative = prompt.negative
    negated = negative[len(NEGATIVE_PROMPT) :].lstrip(", ") if negative.startswith(NEGATIVE_PROMPT) else negative
    return prompt.description, prompt.positive, negated


def refused(checker: PromptChecker, text: str, level: Level) -> bool:
    """Does ``checker`` refuse ``text`` at ``level``, as the conversation asks (its prompt and negative side too)?"""
    description, prompt, negated = described(text)
    return not checker.check_text(description, level, prompt=prompt, negated=negated).allowed


def list_alone(terms: TermList) -> PromptChecker:
    """A checker of ``terms`` without the classifier (no thresholds: it never refuses)."""
    checker = PromptChecker(terms)
    checker.second_check = SecondCheck(terms, limits={})
    return checker


def level_scores(probabilities: np.ndarray, terms: TermList) -> dict[Level, np.ndarray]:
    """Per level, each text's summed probability of the categories that refuse there."""
    return {
        level: probabilities[:, [LABELS.index(c) for c in CATEGORIES if level in terms.categories.get(c, frozenset())]].sum(axis=1)
        for level in LEVELS
    }


@dataclass
class Fitted:
    """A model, its thresholds, and the cross-validated harmless scores (per calibration set and level) they come from."""

    model: TextClassifier
    examples: list[Example]
    scores: dict[str, dict[Level, np.ndarray]]
    texts: dict[str, list[str]]
    thresholds: dict[Level, float]
    seconds: float


def fit(examples: list[Example], terms: TermList, calibration: dict[str, list[str]], folds: int, options: dict) -> Fitted:
    """Train on ``examples``; score the calibration sets (cross-validated, see the module docstring); choose thresholds."""
    reader, lister = SecondCheck(terms, limits={}), list_alone(terms)
    names = list(calibration)
    originals = [text for name in names for text in calibration[name]]
    groups = [group_of(text) for text in originals]
    texts = [reader.readable(text, lister.scan(text)) for text in originals]
    began = time.perf_counter()
    model = TextClassifier.train(examples, **options)
    seconds = time.perf_counter() - began
    trained = {example.group for example in examples}
    probabilities = np.zeros((len(texts), len(LABELS)), dtype=np.float32)

    def score(with_model: TextClassifier, rows: list[int]) -> None:
        probabilities[rows] = with_model.probabilities([texts[i] for i in rows])

    outside = [i for i, group in enumerate(groups) if group not in trained]
    if outside:
        score(model, outside)
    for fold in range(folds):
        inside = [i for i, group in enumerate(groups) if group in trained and group_fold(group, folds) == fold]
        if inside:
            score(TextClassifier.train([e for e in examples if group_fold(e.group, folds) != fold], **options), inside)
    all_scores = level_scores(probabilities, terms)
    scores: dict[str, dict[Level, np.ndarray]] = {}
    start = 0
    for name in names:
        scores[name] = {level: values[start : start + len(calibration[name])] for level, values in all_scores.items()}
        start += len(calibration[name])
    thresholds = {
        level: max(float(np.sort(scores[name][level])[::-1][int(BUDGETS[name] * len(calibration[name]))]) for name in names)
        for level in LEVELS
    }
    return Fitted(model, examples, scores, dict(calibration), thresholds, seconds)


def with_classifier(terms: TermList, fitted: Fitted, reading: TermList) -> PromptChecker:
    """A checker of ``terms`` with ``fitted``'s classifier behind it (reading as ``reading``'s second check would)."""
    checker = PromptChecker(terms)
    checker.second_check = SecondCheck(reading, model=lambda: fitted.model, limits=fitted.thresholds)
    return checker


def classifier_refuses(fitted: Fitted, terms: TermList, texts: Sequence[str], level: Level) -> list[bool]:
    """Does the classifier alone (with ``fitted``'s model and thresholds) refuse each text at ``level``?"""
    check = SecondCheck(terms, model=lambda: fitted.model, limits=fitted.thresholds)
    return [bool(check.hits(text, level)) for text in texts]


def leaks(probes: Sequence[Probe], examples: Sequence[Example]) -> list[tuple[str, str]]:
    """(probe, training text) pairs where a training example contains a probe (normalised; Latin as whole words)."""
    found = []
    normalised = [(example.text, normalise(example.text)) for example in examples]
    for probe in probes:
        key = normalise(probe.text)
        pattern = re.compile(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])")
        found += [(probe.text, text) for text, form in normalised if pattern.search(form)]
    return found


def _cell(values: Sequence[bool]) -> str:
    return f"{sum(values):4d}/{len(values):<4d}{100 * sum(values) / max(len(values), 1):5.1f} %"


def _row(name: str, cells: Sequence[str]) -> None:
    print(f"  {name:40s}" + "".join(f"{cell:>18s}" for cell in cells))


def recall_table(
    title: str,
    probes: Sequence[Probe],
    refuses_clf: Callable[[Level], list[bool]],
    lists: dict[str, tuple[PromptChecker, PromptChecker]],
    terms: TermList,
) -> dict[Level, list[bool]]:
    """Print one recall table (the classifier alone; per list: alone, and with the classifier wired in behind it)."""
    print(f"\n{title}")
    _row("", [level.value for level in LEVELS])
    answers: dict[Level, list[bool]] = {}
    rows: dict[str, list[str]] = {}
    for level in LEVELS:
        relevant = [i for i, p in enumerate(probes) if level in terms.categories.get(p.category, frozenset())]
        clf = refuses_clf(level)
        answers[level] = clf
        cells = {"classifier alone": [clf[i] for i in relevant]}
        for name, (alone, combined) in lists.items():
            cells[f"list {name} alone"] = [refused(alone, probes[i].text, level) for i in relevant]
            cells[f"list {name} + classifier"] = [refused(combined, probes[i].text, level) for i in relevant]
        for name, values in cells.items():
            rows.setdefault(name, []).append(_cell(values))
    for name, values in rows.items():
        _row(name, values)
    return answers


def main(argv: list[str] | None = None) -> int:
    """Run the measurement (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--write", action="store_true", help=f"write the thresholds to {THRESHOLDS_FILE.relative_to(ROOT)}")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--l2", type=float)
    args = parser.parse_args(argv)
    options = {
        key: value
        for key, value in {"epochs": args.epochs, "learning_rate": args.learning_rate, "l2": args.l2}.items()
        if value is not None
    }

    terms = TermList.load()
    probes = read_probes()
    harmless_probes = [p for p in probes if p.category == HARMLESS]
    refusable = [p for p in probes if p.category != HARMLESS]
    rounds = [p for p in refusable if p.origin == "round"]
    written = [p for p in refusable if p.origin != "round"]
    descriptions = harmless_descriptions()

    # The list before the round: today's without every term a round probe hits.
    shipped_checker = list_alone(terms)
    removed = sorted({(h.category, h.term) for p in rounds for h in shipped_checker.scan(p.text) if h.category in CATEGORIES})
    before = TermList.parse("".join(f"[{c}]\n-{t}\n" for c, t in removed), "before the round", base=terms)
    removed_matcher = list_alone(TermList.parse("".join(f"[{c}: strict]\n{t}\n" for c, t in removed), "the round's terms"))

    shipped_examples = training_examples(terms)
    held_out_examples = training_examples(before, leave_out=lambda text: bool(removed_matcher.scan(text)))
    shipped = fit(
        shipped_examples, terms, {"descriptions": descriptions, "sentences": harmless_sentences(shipped_examples)}, args.folds, options
    )
    held_out = fit(
        held_out_examples, before, {"descriptions": descriptions, "sentences": harmless_sentences(held_out_examples)}, args.folds, options
    )

    print(
        f"Training (the shipped model, this machine): {len(shipped.examples)} examples, "
        f"{len(shipped.model.vocabulary)} features, {shipped.seconds:.2f} s"
    )
    print(
        f"Budgets: {BUDGETS['descriptions']:.1%} of our {len(descriptions)} harmless descriptions, "
        f"{BUDGETS['sentences']:.0%} of our {len(shipped.texts['sentences'])} harmless sentences (cross-validated, {args.folds} folds)\n"
    )
    _row("", [level.value for level in LEVELS])
    for name, fitted in (("shipped model", shipped), ("held-out model", held_out)):
        _row(f"{name}: threshold", [f"{fitted.thresholds[level]:.4f}" for level in LEVELS])
        for calibration in ("descriptions", "sentences"):
            _row(
                f"  false refusals, {calibration}",
                [_cell(list(fitted.scores[calibration][level] > fitted.thresholds[level])) for level in LEVELS],
            )
    combined = with_classifier(terms, shipped, terms)
    _row(
        f"held-out harmless probes ({len(harmless_probes)}), list + clf",
        [_cell([refused(combined, p.text, level) for p in harmless_probes]) for level in LEVELS],
    )
    _row(
        "  of which the list alone",
        [_cell([refused(shipped_checker, p.text, level) for p in harmless_probes]) for level in LEVELS],
    )

    leaked = leaks(probes, held_out.examples) + leaks(written + harmless_probes, shipped.examples)
    print(f"\nProbes: {len(rounds)} from the round, {len(written)} written, {len(harmless_probes)} harmless; "
          f"removed for 'before': {len(removed)} terms")
    print(f"Leaks (a probe inside a training example): {len(leaked)}")
    for probe, text in leaked[:20]:
        print(f"  {probe!r} in {text!r}")

    def held_out_clf(group: Sequence[Probe]) -> Callable[[Level], list[bool]]:
        # With today's list: with "before" the round's terms would count as removed by an operator, and go unread.
        return lambda level: classifier_refuses(held_out, terms, [p.text for p in group], level)

    def shipped_clf(group: Sequence[Probe]) -> Callable[[Level], list[bool]]:
        return lambda level: classifier_refuses(shipped, terms, [p.text for p in group], level)

    before_lists = {"before": (list_alone(before), with_classifier(before, held_out, terms))}
    now_lists = {"now": (shipped_checker, combined)}
    recall_table(f"Recall, round probes ({len(rounds)}), held-out model", rounds, held_out_clf(rounds), before_lists, before)
    recall_table(f"Recall, written probes ({len(written)}), held-out model", written, held_out_clf(written), before_lists, before)
    recall_table(f"Recall, all probes ({len(refusable)}), held-out model", refusable, held_out_clf(refusable), before_lists, before)
    answers = recall_table(f"Recall, written probes ({len(written)}), shipped model", written, shipped_clf(written), now_lists, terms)

    if args.verbose:
        for calibration in ("descriptions", "sentences"):
            values = shipped.scores[calibration][Level.STRICT]
            top = np.argsort(-values)[:25]
            print(f"\nHighest {calibration} scores, shipped model, strict (threshold {shipped.thresholds[Level.STRICT]:.4f}):")
            print("  " + "; ".join(f"{shipped.texts[calibration][i]!r} {values[i]:.3f}" for i in top))
        wrong = [(p.text, combined.check_text(p.text, Level.STRICT).reasons) for p in harmless_probes]
        print("\nHeld-out harmless probes refused at strict: " + "; ".join(f"{t} {r}" for t, r in wrong if r))
        caught = [p.text for p, hit in zip(written, answers[Level.STRICT]) if hit]
        print(f"\nWritten probes the shipped classifier refuses at strict ({len(caught)}): " + "; ".join(caught))
        held = classifier_refuses(held_out, terms, [p.text for p in rounds], Level.STRICT)
        print("Round probes the held-out classifier refuses at strict: " + "; ".join(p.text for p, hit in zip(rounds, held) if hit))

    if args.write:
        lines = [
            "# Thresholds of the content policy's second check (engine/policy/classifier.py), per level: a description",
            "# whose summed probability of the categories refused at that level is above it is refused.",
            "# Written by `python -m bench.policy --write` (cross-validated, see there); re-run it after changing the data.",
        ]
        for level in LEVELS:
            counts = ", ".join(
                f"{int((shipped.scores[name][level] > shipped.thresholds[level]).sum())} of our {len(shipped.texts[name])} "
                f"harmless {name}"
                for name in ("descriptions", "sentences")
            )
            lines.append(f"# {level.value}: {counts} above it")
        lines += [f"{level.value}\t{shipped.thresholds[level]:.4f}" for level in LEVELS]
        THRESHOLDS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"\nwrote {THRESHOLDS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
