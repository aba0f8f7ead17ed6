"""The ``voice2anime`` command line: run, worker, migrate, transcribe, prompt, generate.

Exit codes: 0 ok, 2 the input was rejected (the reason is printed),
3 a model or checkpoint is unavailable (what to put where is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot import factory
from bot.settings import Settings
from engine.api import Prompt, Transcript
from engine.errors import ModelUnavailableError, UserError
from engine.prompt import build_prompt

log = logging.getLogger("voice2anime")


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, ensure_ascii=False, indent=2))


def _transcript_json(transcript: Transcript) -> dict[str, Any]:
    return dataclasses.asdict(transcript) | {"words": [dataclasses.asdict(w) for w in transcript.words]}


def _prompt_json(prompt: Prompt) -> dict[str, Any]:
    return dataclasses.asdict(prompt)


def _print_prompt(prompt: Prompt) -> None:
    parsed = prompt.parsed
    print(f"subject:    {parsed.subject}")
    print(f"attributes: {', '.join(parsed.attributes)}")
    print(f"action:     {parsed.action}")
    print(f"scene:      {', '.join(parsed.scene)}")
    print(f"prompt:     {prompt.positive}")
    print(f"negative:   {prompt.negative}")


def cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    """Transcribe an audio file and print the transcript."""
    transcript = factory.speech_recognizer(settings).transcribe(Path(args.file), language=args.language)
    if args.json:
        _print_json(_transcript_json(transcript))
    else:
        print(transcript.text)
        print(f"[language {transcript.language} p={transcript.language_probability:.2f}, {transcript.duration:.1f} s]")
        if transcript.translation and transcript.translation != transcript.text:
            print(f"[english] {transcript.translation}")
    return 0


def cmd_prompt(args: argparse.Namespace, settings: Settings) -> int:
    """Turn a description into a Stable Diffusion prompt and print it."""
    prompt = build_prompt(args.text)
    if args.json:
        _print_json(_prompt_json(prompt))
    else:
        _print_prompt(prompt)
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Voice, text or photo -> anime PNG (and optionally the base image)."""
    pipeline = factory.anime_pipeline(settings)
    transcript = None
    if args.photo:
        result = pipeline.from_photo(Path(args.photo), style=args.style)
    else:
        if args.voice:
            transcript = factory.speech_recognizer(settings).transcribe(Path(args.voice), language=args.language)
            prompt = build_prompt(transcript.text, translation=transcript.translation, language=transcript.language)
        else:
            prompt = build_prompt(args.text)
        result = pipeline.from_prompt(prompt, style=args.style, seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result.anime_image.save(args.output)
    if args.base_output:
        result.base_image.save(args.base_output)
    summary = {
        "output": str(args.output),
        "base_output": str(args.base_output) if args.base_output else None,
        "style": result.style,
        "seed": result.seed,
        "model": result.model,
        "prompt": _prompt_json(result.prompt) if result.prompt else None,
        "transcript": transcript.text if transcript else None,
        "timings": dict(result.timings),
    }
    if args.json:
        _print_json(summary)
    else:
        print(f"saved {args.output} (style {result.style}, seed {result.seed}, {result.seconds:.1f} s)")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Start the chat bot (every platform with a token) until Ctrl+C."""
    from bot.app import NoAdapterError, run

    try:
        asyncio.run(run(settings))
    except NoAdapterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run image jobs from Redis (ENGINE=redis bots) until SIGINT/SIGTERM; models load once, first."""
    from engine.worker import serve

    if args.pipeline:
        module, _, name = args.pipeline.partition(":")
        build = getattr(importlib.import_module(module), name)
    else:
        build = factory.loaded_pipeline
    pipeline = build(settings)
    asyncio.run(serve(pipeline, factory.redis_config(settings), name=settings.worker_name))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Bring the database schema up to date."""
    from db.migrate import upgrade

    upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voice2anime`` command."""
    parser = argparse.ArgumentParser(prog="voice2anime", description="Say it, get an anime picture.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("transcribe", help="transcribe a voice note / audio file")
    p.add_argument("file")
    p.add_argument("--language", help="force a language code (zh, en, yue, ...)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_transcribe)

    p = sub.add_parser("prompt", help="turn a description (zh/en) into a Stable Diffusion prompt")
    p.add_argument("text")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_prompt)

    p = sub.add_parser("generate", help="voice note, text or photo -> anime PNG")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--voice", help="audio file to transcribe and draw")
    source.add_argument("--text", help="description to draw")
    source.add_argument("--photo", help="photo to restyle")
    p.add_argument("--style", help="AnimeGANv2 style (default: ANIME_STYLE)")
    p.add_argument("--seed", type=int, help="seed for reproducible results")
    p.add_argument("--language", help="force the spoken language for --voice")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the anime PNG")
    p.add_argument("--base-output", type=Path, help="also write the base (pre-style) image here")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("run", help="start the chat bot (Telegram/Discord, whichever has a token)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("worker", help="run image jobs for ENGINE=redis bots (one process per GPU)")
    p.add_argument("--pipeline", metavar="MODULE:CALLABLE", help="build the pipeline with CALLABLE(settings) instead (tests, benchmarks)")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("migrate", help="create/upgrade the database schema (run also happens automatically at start)")
    p.set_defaults(handler=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voice2anime`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return 2
    try:
        return args.handler(args, settings)
    except UserError as error:
        log.info("rejected input: %s (%s)", error.key, error.detail or "")
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModelUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
