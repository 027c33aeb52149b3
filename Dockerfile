# The Tapeflow image: one image, every command (`tapeflow run market`, `tapeflow init`, ...).
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
ENV PATH="/app/.venv/bin:$PATH"
ENTRYPOINT ["tapeflow"]
CMD ["--help"]
