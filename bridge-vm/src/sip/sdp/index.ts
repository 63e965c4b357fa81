export * from "./negotiate";
