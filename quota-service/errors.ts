// The quota service's typed errors, each with the gRPC status it is answered with.
import { status } from '@grpc/grpc-js';

export class QuotaError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'QuotaError';
  }
}

export const invalidArgument = (message: string): QuotaError => new QuotaError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string): QuotaError => new QuotaError(status.NOT_FOUND, message);
export const permissionDenied = (message: string): QuotaError => new QuotaError(status.PERMISSION_DENIED, message);
export const unauthenticated = (message: string): QuotaError => new QuotaError(status.UNAUTHENTICATED, message);
export const unavailable = (message: string): QuotaError => new QuotaError(status.UNAVAILABLE, message);
export const failedPrecondition = (message: string): QuotaError => new QuotaError(status.FAILED_PRECONDITION, message);
