export * from "./control";
export * from "./frames";
export * from "./messages";
