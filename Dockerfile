# llm-gateway image: one `llmgw` executable for the sidecar, the quota service and the injector.
#
# Build and push the image the chart runs (charts/llm-gateway: image.repository, tag = appVersion), from
# the repository root, for the clusters' architectures:
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/llm-gateway/llm-gateway:0.1.0 --push .
#
# (or, for the build machine's architecture only: `docker build -t ghcr.io/llm-gateway/llm-gateway:0.1.0 .`
# then `docker push ghcr.io/llm-gateway/llm-gateway:0.1.0`). The tag is package.json's version, which is
# the chart's appVersion.
#
# The image holds the esbuild bundle (dist/llmgw) and only the node_modules it loads by name at run time:
# the native SQLite addon better-sqlite3 with `bindings` and `file-uri-to-path` (scripts/runtime-deps.mjs
# picks them; test/integration/production-install.test.ts starts every role from the same selection).
#
# Base image: Node 20.20.2 on Debian bookworm, pinned by the digest of its multi-platform index, so a
# rebuild gets the same bytes. To move it: `docker buildx imagetools inspect node:<version>-bookworm-slim`
# and take the top-level "Digest:" (the index, not one platform's manifest); both stages must use the same
# image, since the addon is compiled for that Node's ABI and glibc.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# better-sqlite3's install script fetches its prebuilt addon, or builds it from source with these.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# The folders tsconfig.build.json compiles (the production-install test checks this list against it).
COPY tsconfig.json tsconfig.build.json bundle.mjs ./
COPY cli ./cli
COPY common ./common
COPY sidecar ./sidecar
COPY quota-service ./quota-service
COPY injector-webhook ./injector-webhook
COPY proto ./proto
COPY bench ./bench
COPY scripts ./scripts
RUN npm run build \
 && node scripts/runtime-deps.mjs /runtime

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# dist/llmgw and node_modules/{better-sqlite3,bindings,file-uri-to-path}, read-only for the process.
COPY --from=build /runtime /app
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
