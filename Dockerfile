# Qure web app and worker image. Talks to real PostgreSQL, Redis and MongoDB (see
# docker-compose.yml); the embedded servers of `make run` are not installed here.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QURE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000

# Pango and HarfBuzz for WeasyPrint (printed prescriptions and receipts). The PDFs' fonts
# ship in qure/static/fonts/ (copied with qure/ below); DejaVu is only the fallback for a
# character they lack.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 \
      fonts-dejavu-core shared-mime-info \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY qure ./qure
COPY migrations ./migrations
COPY wsgi.py gunicorn.conf.py ./
RUN useradd --system --uid 10001 --home-dir /app qure \
 && mkdir -p /app/instance \
 && chown -R qure /app/instance
USER qure

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
