# syncd in a container: the same package the README installs, run as an unprivileged user.
# One image for every role: `sandbox`, `worker`, `beat`, `daemon` (embedded), and the
# one-shot commands (`run --once`, `trigger`, `runs`...). See compose.yaml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY connectors ./connectors
COPY tasks ./tasks
RUN pip install --no-cache-dir ".[postgres]" && useradd --system --create-home syncd
USER syncd
WORKDIR /home/syncd
# Logs reach `docker logs` line by line; SIGTERM (the default stop signal) is the
# daemon's graceful stop.
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["syncd"]
CMD ["--help"]
