# The receiver as a container: a wheel built in a throw-away stage, installed into a slim image
# that runs as an unprivileged user with its SQLite file (and generated callback key) on /data.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY receiver ./receiver
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin receiver \
    && mkdir -p /data && chown receiver:receiver /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER receiver
ENV PYTHONUNBUFFERED=1 \
    RECEIVER_HOST=0.0.0.0 \
    RECEIVER_PORT=8080 \
    RECEIVER_DATABASE=/data/receiver.db
VOLUME ["/data"]
EXPOSE 8080
# Ready = events can be committed (a broker outage keeps it ready: callbacks are still stored).
# On the port the service listens on: RECEIVER_PORT as the container has it, not a fixed 8080.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('RECEIVER_PORT') or '8080'; sys.exit(u.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4).status != 200)"]
# SIGTERM: stop accepting, finish in-flight requests, record in-flight confirms, flush, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["receiver"]
CMD ["serve"]
