export * from "./frames";
export * from "./messages";
