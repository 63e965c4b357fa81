export * from "./realtime";
