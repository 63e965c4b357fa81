export * from "./binding";
export * from "./llm";
export * from "./stt";
export * from "./tts";
