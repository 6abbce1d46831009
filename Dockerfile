# llm-gateway image: one `llmgw` executable for the sidecar, the quota service and the injector.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Native addons (better-sqlite3) build from source here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json bundle.mjs ./
COPY cli ./cli
COPY sidecar ./sidecar
COPY bench ./bench
COPY proto ./proto
COPY quota-service ./quota-service
COPY injector-webhook ./injector-webhook
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
# The bundle carries its dependencies except the native SQLite addon, loaded from node_modules.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/llmgw ./dist/llmgw
# `llmgw` on PATH for the injected sidecar's lifecycle hooks (`llmgw await`); the same V8 flags as the
# executable's shebang (see cli/main.ts).
RUN printf '#!/bin/sh\nexec node --max-semi-space-size=4 /app/dist/llmgw/main.mjs "$@"\n' > /usr/local/bin/llmgw \
 && chmod 0755 /usr/local/bin/llmgw
# Unprivileged, by number so that runAsNonRoot can check it; works with a read-only root filesystem
# (state goes to mounted volumes, temporary files to /tmp).
USER 1000:1000
EXPOSE 4000 4001 50051 8443
ENTRYPOINT ["llmgw"]
CMD ["sidecar", "--config", "/etc/llm-gateway/config.yaml"]
