# syncd in a container: the same package the README installs, run as an unprivileged user.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY connectors ./connectors
COPY tasks ./tasks
RUN pip install --no-cache-dir ".[postgres]" && useradd --system --create-home syncd
USER syncd
WORKDIR /home/syncd
ENTRYPOINT ["syncd"]
CMD ["--help"]
