export * from "./config";
export * from "./llm";
export * from "./stt";
export * from "./tts";
