# The session server on its embedded default (one process, no Redis).
# Build: docker build -t tutorwire .
# Run:   docker run -p 8000:8000 -e TUTORWIRE_SECRET=... -v tutorwire-recordings:/data/recordings tutorwire
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libopus0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wire ./wire
COPY sessionserver ./sessionserver
COPY matcher ./matcher
COPY recordings ./recordings
COPY pen_gateway ./pen_gateway
COPY web_client ./web_client
RUN pip install --no-cache-dir ./wire . && useradd --system --no-create-home tutorwire \
    && mkdir -p /data/recordings && chown tutorwire /data/recordings
USER tutorwire
ENV TUTORWIRE_HOST=0.0.0.0 TUTORWIRE_PORT=8000 TUTORWIRE_RECORDINGS_DIR=/data/recordings
EXPOSE 8000
# on the port the server listens on (compose.yaml runs nodes on 8001 and 8002)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TUTORWIRE_PORT', '8000'), timeout=2)"
CMD ["tutorwire", "serve"]
