export {
  CloudLink,
  type CloudLinkCounters,
  CloudLinkError,
  type CloudLinkEvents,
  type CloudLinkOptions,
  type LinkLogger,
  type LinkState,
  type LostReason,
  mediaSocketUrl,
} from "./link";
export { type FallbackAction, fallbackFor, type LinkOutcome, openCloudLink } from "./open";
