// Builds the console into one script and one stylesheet with fixed names (console.js,
// console.css), which src/assets/CMakeLists.txt links into the binary; parley adds a content hash
// to their URLs when it serves index.html. Output directory: --outDir (CMake passes one inside the
// build tree).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    modulePreload: false,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: 'console.js',
        assetFileNames: 'console.[ext]',
        codeSplitting: false,
      },
    },
  },
});
