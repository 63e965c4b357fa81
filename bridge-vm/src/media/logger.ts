/** The slice of a pino logger the media engine uses (pino.Logger satisfies it). */
export interface MediaLogger {
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

export const silentLogger: MediaLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
