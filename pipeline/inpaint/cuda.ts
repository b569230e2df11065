import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../../manifests/errors.ts';

/**
 * onnxruntime-node bundles only the CPU execution provider. The CUDA provider's libraries come from NuGet through
 * the package's install script, which our installs skip (offline; package.json "allowScripts", Makefile
 * ONNXRUNTIME_NODE_INSTALL=skip). The install script reads ONNXRUNTIME_NODE_INSTALL (or npm_config_onnxruntime_node_install)
 * and accepts "cuda12".
 */
export const CUDA_INSTALL_COMMAND = 'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js';

/** The two shared libraries the CUDA execution provider needs, beside onnxruntime's own in the package's bin folder. */
export const CUDA_PROVIDER_LIBS = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];

/** The folder onnxruntime-node loads its native libraries from on this platform. */
export function ortBinFolder(): string {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

export function cudaNotInstalledError(detail: string): UserError {
  return new UserError(`--device cuda: the ONNX Runtime CUDA execution provider is not installed (${detail})`, {
    fix: `install it once with network access (needs CUDA 12 + cuDNN 9 on the machine):\n    ${CUDA_INSTALL_COMMAND}\n  or run with --device cpu`,
  });
}

/** Fails with the install command when the CUDA provider's libraries are absent (Linux x64 is the only CUDA build). */
export function assertCudaProviderInstalled(binFolder = ortBinFolder()): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new UserError(`--device cuda: onnxruntime-node ships a CUDA provider for linux/x64 only, this is ${process.platform}/${process.arch}`, {
      fix: 'run with --device cpu',
    });
  }
  const missing = CUDA_PROVIDER_LIBS.filter((f) => !existsSync(join(binFolder, f)));
  if (missing.length) throw cudaNotInstalledError(`missing ${missing.join(', ')} in ${binFolder}`);
}
