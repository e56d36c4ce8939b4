# A slim production image: the service against an external PostgreSQL (DATABASE_URL). The embedded PostgreSQL is
# for development and demos only.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /wheels

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 voucher
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER voucher
WORKDIR /home/voucher
ENV VE_HOST=0.0.0.0 VE_PORT=8000 VE_DATA_DIR=/home/voucher/data VE_WORKERS=2
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"
# DATABASE_URL must be set; keys are read from VE_SIGNING_KEY_PATH / VE_SERVER_SECRET_PATH (mount them as secrets).
CMD ["voucher-engine", "serve"]
