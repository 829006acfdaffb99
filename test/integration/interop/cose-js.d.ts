// cose-js ships no types; only what the interoperability test calls.
declare module 'cose-js' {
  interface Verifier {
    key: { x: Uint8Array; y: Uint8Array };
    externalAAD?: Uint8Array;
  }
  const cose: {
    sign: {
      Sign1Tag: number;
      verify(message: Uint8Array, verifier: Verifier, options?: { defaultType?: number }): Promise<Buffer>;
    };
  };
  export default cose;
}
