/** Build-time constants (scripts/build.ts) and Vite's inline-worker import. */
declare const __STELE_VERSION__: string;
declare const __STELE_COMMIT__: string;

declare module '*?worker&inline' {
  const WorkerFactory: new () => Worker;
  export default WorkerFactory;
}
