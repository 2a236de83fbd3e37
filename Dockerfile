FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core \
    fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY configs ./configs
COPY assets ./assets
# EXTRAS=ray for the Ray cluster's nodes and the API that drives them (docker-compose.cluster.yml)
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"
# The server runs as an unprivileged user; it writes only under /data (recordings, images).
RUN useradd --system --uid 10001 --no-create-home --home-dir /app avatarcast \
    && mkdir -p /data/recordings /data/images && chown -R 10001:10001 /data && chmod 700 /data
ENV AVATARCAST_ASSETS=/app/assets \
    AVATARCAST_DATABASE_URL=sqlite:////data/avatarcast.db \
    AVATARCAST_RECORDINGS_DIR=/data/recordings \
    AVATARCAST_IMAGES__DIR=/data/images
USER 10001:10001
EXPOSE 8000
CMD ["avatarcast", "serve", "--host", "0.0.0.0", "--port", "8000"]
