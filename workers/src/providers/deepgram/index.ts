export * from "./aura-tts";
export * from "./config";
export * from "./flux-stt";
export * from "./live-stt";
