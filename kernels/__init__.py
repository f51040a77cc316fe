"""babelmap.kernels: similarity, bootstrap, nearest languages and lexical distance over stores."""
