export * from "./headers";
export * from "./parse";
export * from "./serialize";
export * from "./types";
