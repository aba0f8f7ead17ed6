"""Shared test setup: one torch thread (faster on the 2-core CI box), offline hubs (the anime image check on a stand-in), fixture plugins."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch

torch.set_num_threads(1)

pytest_plugins = [
    "tests.support.whisper_model",
    "tests.support.speech",
    "tests.support.tiny_sd",
    "tests.support.tiny_controlnet",
    "tests.support.tiny_depth",
    "tests.support.tiny_pose",
    "tests.support.animegan_weights",
    "tests.support.database",
    "tests.support.redis_server",
    "tests.support.conversation",
    "tests.support.discord_sim",
    "tests.support.fake_telegram",
    "tests.support.onnx_tagger",
]
