# llm-gateway image: one `llmgw` executable for the sidecar, the quota service and the injector.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Native addons (better-sqlite3) build from source here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY cli ./cli
COPY sidecar ./sidecar
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The image runs unprivileged and works with a read-only root filesystem (state goes to mounted volumes).
USER node
EXPOSE 4000 4001
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["sidecar", "--config", "/etc/llm-gateway/config.yaml"]
