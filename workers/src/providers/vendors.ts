/**
 * Registers the vendor implementations (providers/<vendor>/) under the ids agent definitions use.
 * Each factory maps an agent's provider choice + the Worker env onto the vendor class's options, and
 * fails with ProviderUnavailableError naming the missing secret or binding.
 */
import { registerProvider } from "./registry";

let registered = false;

/** Idempotent; called once per isolate before the first call is set up. */
export function registerVendorProviders(): void {
  if (registered) return;
  registered = true;
  // Vendor factories are added here as the vendor clients land (see the package README).
  void registerProvider;
}
