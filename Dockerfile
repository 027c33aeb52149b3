# The Tapeflow image: one image, every command (`tapeflow run market`, `tapeflow init`, ...).
# It runs as an unprivileged user: the code and its environment belong to root and are only
# read; the user writes its home (TAPEFLOW_HOME) and the recovery volume (/recovery).
FROM python:3.11-slim AS app
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY tapeflow tapeflow
COPY flows flows
COPY sources sources
COPY sinks sinks
COPY jobs jobs
COPY schemas schemas
RUN uv sync --locked --no-dev
RUN useradd --system --uid 10001 --create-home --home-dir /home/tapeflow tapeflow \
    && mkdir -p /recovery && chown tapeflow /recovery
ENV PATH="/app/.venv/bin:$PATH" TAPEFLOW_HOME=/home/tapeflow/.tapeflow
USER 10001
ENTRYPOINT ["tapeflow"]
CMD ["--help"]
