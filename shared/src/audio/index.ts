export * from "./constants";
export * from "./g711";
export * from "./resample";
