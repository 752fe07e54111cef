/* A C consumer of the installed C API (include/ropeattn-c/RopeAttn.h,
 * libRopeAttnCAPI.so): compile, query, invoke, and a reported error. */
#include "ropeattn-c/RopeAttn.h"

#include <stdio.h>
#include <string.h>

static const char *kModule =
    "func.func @add(%a: tensor<2x3xf64>, %b: tensor<2x3xf64>) -> "
    "tensor<2x3xf64> {\n"
    "  %e = tensor.empty() : tensor<2x3xf64>\n"
    "  %c = linalg.add ins(%a, %b : tensor<2x3xf64>, tensor<2x3xf64>) "
    "outs(%e : tensor<2x3xf64>) -> tensor<2x3xf64>\n"
    "  return %c : tensor<2x3xf64>\n"
    "}\n"
    "func.func @attn(%q: tensor<2x4x8xf32>, %k: tensor<1x4x8xf32>, "
    "%v: tensor<1x4x8xf32>) -> tensor<2x4x8xf32> {\n"
    "  %o = ropeattn.attention %q, %k, %v causal rope <> : "
    "(tensor<2x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> "
    "tensor<2x4x8xf32>\n"
    "  return %o : tensor<2x4x8xf32>\n"
    "}\n";

int main(void) {
  char *error = NULL;
  printf("version %d\n", ropeattnGetCAPIVersion());
  RopeAttnModule *module = ropeattnModuleCompile(
      kModule, strlen(kModule), NULL, "", 2, NULL, &error);
  if (!module) {
    printf("error: %s\n", error);
    ropeattnFreeString(error);
    return 1;
  }
  char *names = ropeattnModuleGetFunctionNames(module);
  printf("functions %s\n", names);
  ropeattnFreeString(names);
  char *signature = ropeattnModuleGetSignature(module, "attn", NULL);
  printf("attn: %s\n", signature);
  ropeattnFreeString(signature);

  double a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {10, 20, 30, 40, 50, 60}, c[6];
  void *args[3] = {a, b, c};
  if (ropeattnModuleInvoke(module, "add", args, 3, &error)) {
    printf("error: %s\n", error);
    return 1;
  }
  printf("add: %g %g %g %g %g %g\n", c[0], c[1], c[2], c[3], c[4], c[5]);

  /* v rows all equal to (j + 1) / 8 in column j: every output row equals
   * them (softmax weights sum to 1). */
  float q[64], k[32], v[32], o[64];
  for (int i = 0; i < 64; ++i)
    q[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
  for (int i = 0; i < 32; ++i) {
    k[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
    v[i] = (float)(i % 8 + 1) / 8.0f;
  }
  void *attnArgs[4] = {q, k, v, o};
  if (ropeattnModuleInvoke(module, "attn", attnArgs, 4, &error)) {
    printf("error: %s\n", error);
    return 1;
  }
  printf("attn: o[1][3][*] = %.4f %.4f ... %.4f\n", o[8 * 7], o[8 * 7 + 1],
         o[8 * 7 + 7]);

  /* Errors are messages, not crashes. */
  if (ropeattnModuleInvoke(module, "attn", attnArgs, 3, &error)) {
    printf("error: %s\n", error);
    ropeattnFreeString(error);
  }
  if (ropeattnModuleInvoke(module, "nope", attnArgs, 4, &error)) {
    printf("error: %s\n", error);
    ropeattnFreeString(error);
  }
  RopeAttnModule *bad =
      ropeattnModuleCompile("func.func @f(", 13, NULL, NULL, 3, NULL, &error);
  printf("bad module: %s\n", bad ? "compiled" : error);
  ropeattnFreeString(error);
  ropeattnModuleDestroy(module);
  return 0;
}
