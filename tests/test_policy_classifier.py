"""The content policy's second check: the classifier behind the term list (engine/policy/classifier.py).

Through ``voice2anime prompt --json`` (what an operator runs), on held-out probes: misspellings and variants that
are in no training data (engine/policy/probes.tsv), which the term list alone lets through.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import engine.policy.classifier as policy_classifier
from bot.cli import main
from engine.policy.classifier import (
    TERM,
    Exemplars,
    SecondCheck,
    TextClassifier,
    classifier,
    read_thresholds,
    skeleton,
    training_examples,
)
from engine.policy.levels import LEVELS, Level
from engine.policy.text import PromptChecker, TermList, prompt_checker

PROBES = Path(policy_classifier.__file__).with_name("probes.tsv")


def prompt_verdict(text: str, level: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict:
    """``CONTENT_POLICY=level voice2anime prompt TEXT --json``'s policy verdict."""
    monkeypatch.setenv("CONTENT_POLICY", level)
    assert main(["prompt", text, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["policy"]


def held_out() -> dict[str, str]:
    """The held-out probes: text -> category."""
    probes = {}
    for line in PROBES.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            category, _, text = line.split("\t")
            probes[text] = category
    return probes


@pytest.fixture(scope="module")
def list_alone() -> PromptChecker:
    """The shipped term list without the classifier behind it (no thresholds: it never refuses)."""
    terms = TermList.load()
    checker = PromptChecker(terms)
    checker.second_check = SecondCheck(terms, limits={})
    return checker


#: Held-out misspellings and variants (text, category, the word the refusal names): refused at strict.
MISSPELLINGS = (
    ("nakked woman", "sexual", "nakked"),
    ("hentaii girl", "sexual", "hentaii"),
    ("an errotic drawing", "sexual", "errotic"),
    ("a girl undresing", "sexual", "undresing"),
    ("a decapitaded knight", "gore", "decapitaded"),
    ("dismembred body", "gore", "dismembred"),
    ("nazzi soldier", "hate", "nazzi"),
    ("a sexxy maid", "suggestive", "sexxy"),
    ("sucide", "violence", "sucide"),
)


@pytest.mark.parametrize(("text", "category", "word"), MISSPELLINGS)
def test_held_out_misspellings_are_refused(
    text: str,
    category: str,
    word: str,
    list_alone: PromptChecker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert held_out()[text] == category  # a probe: never in the training data (bench/policy.py checks that too)
    assert list_alone.check_text(text, "strict").allowed  # the list alone lets it through
    verdict = prompt_verdict(text, "strict", monkeypatch, capsys)
    assert verdict["allowed"] is False
    assert f'{category}: "{word}"' in verdict["reasons"], verdict  # the refusal names the word


@pytest.mark.parametrize(("text", "category", "word"), MISSPELLINGS)
def test_the_classifier_refuses_at_the_levels_its_category_does(
    text: str, category: str, word: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sexual, gore and hate are refused at standard too, suggestive and violence only at strict; nothing at off."""
    expected = category not in ("suggestive", "violence")
    assert (prompt_verdict(text, "standard", monkeypatch, capsys)["allowed"] is False) is expected
    assert prompt_verdict(text, "off", monkeypatch, capsys) == {"level": "off", "allowed": True, "reasons": []}


def test_a_hit_is_its_own_term_and_names_the_words_as_written() -> None:
    verdict = prompt_checker().check_text("a NAKKED girl", Level.STRICT)
    assert not verdict.allowed
    (hit,) = verdict.hits
    assert (hit.category, hit.term, hit.found, hit.source) == ("sexual", TERM, "NAKKED", "text")
    assert "a NAKKED girl"[hit.start : hit.end] == "NAKKED"


def test_what_the_description_negates_is_not_read() -> None:
    checker = prompt_checker()
    assert not checker.check_text("a decapitaded knight", "strict").allowed
    assert checker.check_text("a knight, not decapitaded", "strict").allowed
    assert not checker.check_text("满地的血", "strict").allowed
    assert checker.check_text("不要满地的血", "strict").allowed


def test_the_lists_own_words_are_left_to_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """At standard "sexy" is the list's (suggestive: allowed there); the classifier does not read it again."""
    assert prompt_verdict("a sexy nurse", "standard", monkeypatch, capsys)["allowed"] is True
    verdict = prompt_verdict("a sexy nurse, nakked", "standard", monkeypatch, capsys)
    assert verdict["allowed"] is False and verdict["reasons"] == ['sexual: "nakked"']


def test_a_term_an_operator_removed_is_not_read_either(tmp_path: Path) -> None:
    extra = tmp_path / "terms.txt"
    extra.write_text("[sexual]\n-nude\n-nudity\n", encoding="utf-8")
    checker = PromptChecker(TermList.load(extra))
    assert checker.check_text("a nude girl", "strict").allowed
    assert checker.check_text("nude portrait, nudity", "standard").allowed
    assert not checker.check_text("a nakked girl", "strict").allowed


# --- the data and the model ------------------------------------------------------------------------


def test_no_held_out_probe_is_in_the_training_data() -> None:
    from bench.policy import leaks, read_probes

    written = [probe for probe in read_probes() if probe.origin == "written"]
    assert leaks(written, training_examples(TermList.load())) == []


def test_the_exemplars_and_thresholds_read(tmp_path: Path) -> None:
    exemplars = Exemplars.load()
    labels = {example.label for example in exemplars.examples}
    assert labels == {"harmless", "sexual", "suggestive", "gore", "violence", "hate"}
    assert sum(example.label != "harmless" for example in exemplars.examples) > 400
    assert exemplars.templates["en"] and exemplars.templates["zh"]
    limits = read_thresholds()
    assert set(limits) == {Level.STRICT, Level.STANDARD}
    assert all(0 < value < 1 for value in limits.values())
    bad = tmp_path / "bad.tsv"
    bad.write_text("sexual\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:1"):
        Exemplars.load(bad)
    bad.write_text("lenient\t0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:1"):
        read_thresholds(bad)


def test_skeletons_fold_spellings_together() -> None:
    assert skeleton("naked") == skeleton("nakid") == skeleton("nekkid") == "n*k*d"
    assert skeleton("pornographic") == skeleton("pornografic")
    assert skeleton("sexy") == skeleton("seksi")


def test_the_model_is_trained_once_per_process_even_from_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    model = classifier()
    assert classifier() is model
    monkeypatch.setattr(policy_classifier, "_MODEL", None)
    calls: list[int] = []

    def slow_train(examples: object, **options: object) -> TextClassifier:
        calls.append(1)
        time.sleep(0.2)
        return model

    monkeypatch.setattr(TextClassifier, "train", slow_train)
    found: list[TextClassifier] = []
    threads = [threading.Thread(target=lambda: found.append(classifier())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and found == [model] * 4


def test_verdicts_are_remembered() -> None:
    checker = prompt_checker()
    assert checker.check_text("a nakked girl", "strict") is checker.check_text("a nakked girl", "strict")


@pytest.mark.parametrize("level", [level.value for level in LEVELS])
def test_nothing_harmless_of_the_probes_neighbours_is_refused(level: str) -> None:
    """Near-misses of the probes' words stay allowed at every level."""
    checker = prompt_checker()
    for text in ("a naked mole rat", "a killer whale", "a blood orange", "a sextant", "unisex hoodie", "a kid with a kite"):
        assert checker.check_text(text, level).allowed, text


def test_missing_data_leaves_the_list_alone_to_check(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """An install without the data files: the operator is told, and the list still refuses what it knows."""

    def missing() -> TextClassifier:
        raise FileNotFoundError(tmp_path / "exemplars.tsv")

    terms = TermList.load()
    checker = PromptChecker(terms)
    checker.second_check = SecondCheck(terms, model=missing)
    with caplog.at_level("ERROR", logger="engine.policy.classifier"):
        assert checker.check_text("nakked woman", "strict").allowed
    assert not checker.check_text("a nude woman", "strict").allowed
    assert "checked against the term list only" in caplog.text
