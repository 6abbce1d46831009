// The throw-away PostgreSQL server the tests start (shared with the quota RPC bench: bench/lib/postgres.ts).
export * from '../../bench/lib/postgres.js';
