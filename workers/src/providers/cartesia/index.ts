export * from "./tts";
