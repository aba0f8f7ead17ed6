# syntax=docker/dockerfile:1
# voice2anime images (see README "Install" and "Scaling out"):
#   docker build --target bot -t voice2anime:bot .   # chat bot + speech, CPU only, no torch (python:3.11-slim, ENGINE=redis)
#   docker build --target gpu -t voice2anime:gpu .   # the image engine on CUDA: `voice2anime worker` (default) or the all-in-one `run`
# The bot image is the base install (`pip install voice2anime`: adapters, conversation, Whisper,
# database, Redis client) and cannot draw; the gpu image adds the `engine` extra, with torch
# installed first from PyTorch's own CUDA index so that the extra accepts it instead of pulling another build.

ARG TORCH_VERSION=2.13.0
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128

# --- the project as a wheel (no dependencies) ----------------------------------------------
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot bot
COPY db db
COPY engine engine
COPY handlers handlers
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- bot: adapters, conversation, Whisper on the CPU; images come from the workers ---------
# The base install only: no torch, diffusers or onnx (ENGINE=local, worker and generate refuse with
# "install voice2anime[engine]", exit 3).
FROM python:3.11-slim AS bot
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN useradd --create-home --uid 10001 voice2anime
WORKDIR /app
COPY --chown=voice2anime checkpoints/README.md checkpoints/styles.json checkpoints/
RUN mkdir -p models data && chown voice2anime models data
USER voice2anime
ENV ENGINE=redis
ENTRYPOINT ["voice2anime"]
CMD ["run"]

# --- gpu: one `voice2anime worker` per GPU (or everything in one process with `run`) --------
FROM ${CUDA_IMAGE} AS gpu
ARG TORCH_VERSION
ARG TORCH_CUDA_INDEX
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_CUDA_INDEX}"
COPY --from=wheel /wheels /wheels
# the project with its image engine (diffusers, transformers, onnx, ...); torch above already satisfies the extra
RUN wheel=$(echo /wheels/*.whl) && pip install --no-cache-dir "${wheel}[engine]" && rm -rf /wheels
RUN useradd --create-home --uid 10001 voice2anime
WORKDIR /app
COPY --chown=voice2anime checkpoints/README.md checkpoints/styles.json checkpoints/
RUN mkdir -p models data && chown voice2anime models data
USER voice2anime
ENV TORCH_DEVICE=cuda WHISPER_DEVICE=cuda
ENTRYPOINT ["voice2anime"]
CMD ["worker"]
