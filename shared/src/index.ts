/**
 * @patchbay/shared — what the bridge (Node) and the Worker (workerd) both import. It owns the wire
 * protocol of the media socket, call tokens, and all G.711/PCM conversion. It may import only
 * runtime-neutral code (no node:* modules, no Workers APIs): everything here runs in both places.
 */
export * from "./audio/index";
export * from "./protocol/index";
export * from "./token";
