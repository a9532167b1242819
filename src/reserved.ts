import { ErrorCodes, TwillError } from "./errors.js";

/**
 * The error a reserved entry point throws until its feature lands: honest about what is missing, with SQLSTATE
 * 0A000 (feature_not_supported), instead of a stub that pretends to work.
 */
export function notYetAvailable(feature: string, entryPoint: string): TwillError {
  return new TwillError(
    ErrorCodes.Unsupported,
    `feature not supported: ${feature} (${entryPoint}) is not implemented yet`,
    {
      hint: "see the status table in README.md for what works today",
    },
  );
}
