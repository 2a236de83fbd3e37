FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core \
    fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY configs ./configs
COPY assets ./assets
RUN pip install --no-cache-dir .
ENV AVATARCAST_ASSETS=/app/assets
EXPOSE 8000
CMD ["avatarcast", "serve", "--host", "0.0.0.0", "--port", "8000"]
