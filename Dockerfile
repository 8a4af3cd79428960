# syntax=docker/dockerfile:1
# The analytics service image. Dependencies are installed by npm from package-lock.json (the
# project's lockfile) in a Node stage; the final stage runs them on Bun's own image.

# ---- dependencies ----------------------------------------------------------------------------
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: the runtime comes from the Bun base image below, so the `bun`,
# `bun-types` and `typescript` devDependencies are not needed in the image.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime ---------------------------------------------------------------------------------
FROM oven/bun:1.4-slim
WORKDIR /app
# MIMALLOC_PURGE_DELAY, UV_THREADPOOL_SIZE, JE_MALLOC_CONF: see src/runtime-flags.ts (Bun's
# allocator keeps freed memory for reuse; engine queries do not take every thread the spool's
# fdatasync needs; the engine's allocator keeps freed memory for a minute instead of 5 s).
ENV NODE_ENV=production \
    PORT=3004 \
    DATA_DIR=/data \
    MIMALLOC_PURGE_DELAY=-1 \
    UV_THREADPOOL_SIZE=16 \
    JE_MALLOC_CONF=dirty_decay_ms:60000,muzzy_decay_ms:60000

COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json tsconfig.json ./
COPY --chown=root:root src ./src
COPY --chown=root:root infrastructure/clickhouse ./infrastructure/clickhouse

# The code is owned by root and read-only for the service; only the spool directory is writable.
RUN mkdir -p /data && chown bun:bun /data
VOLUME ["/data"]
USER bun

EXPOSE 3004
# No curl in the slim image: Bun itself asks /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bun", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || '3004') + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM: stop accepting, flush the spool, exit (give it the time in `docker stop -t`).
STOPSIGNAL SIGTERM
# Exit code 70: the embedded engine failed for good (README, "When the embedded engine fails"); run
# the container with a restart policy (`--restart on-failure`): the next start replays the spool.
CMD ["bun", "--max-http-header-size=65536", "src/main.ts"]
