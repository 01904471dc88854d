#include "util/args.h"
#include "util/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void strlist_push(StrList *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = s;
}

void args_usage(const char *usage, const char *summary, Opt *opts, int n_opts) {
    printf("usage: %s\n\n%s\n\noptions:\n", usage, summary);
    for (int i = 0; i < n_opts; i++) {
        Opt *o = &opts[i];
        char left[96];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->type == OPT_FLAG ? "" : " ",
                 o->type == OPT_FLAG ? "" : (o->meta ? o->meta : "X"));
        char def[128] = "";
        switch (o->type) {
        case OPT_INT: snprintf(def, sizeof def, " (default %d)", *(int *)o->dst); break;
        case OPT_I64: snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)o->dst); break;
        case OPT_SIZE: snprintf(def, sizeof def, " (default %lld bytes)", (long long)*(int64_t *)o->dst); break;
        case OPT_DOUBLE: snprintf(def, sizeof def, " (default %g)", *(double *)o->dst); break;
        case OPT_STR:
            if (*(const char **)o->dst) snprintf(def, sizeof def, " (default %s)", *(const char **)o->dst);
            break;
        default: break;
        }
        printf("  %-26s %s%s%s\n", left, o->help, o->required ? " (required)" : "", def);
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

static void bad(const char *usage, const char *msg, const char *arg) {
    fprintf(stderr, "tracellm: error: %s: %s\nusage: %s\n(run with --help for all options)\n", msg, arg, usage);
    exit(2);
}

void args_parse(int argc, char **argv, const char *usage, const char *summary,
                Opt *opts, int n_opts, StrList *positional) {
    bool *seen = xcalloc(n_opts, sizeof *seen);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { args_usage(usage, summary, opts, n_opts); exit(0); }
        if (a[0] != '-' || a[1] == 0) {
            if (!positional) bad(usage, "unexpected argument", a);
            strlist_push(positional, a);
            continue;
        }
        // accept --name=value as well as --name value
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        int k = -1;
        for (int j = 0; j < n_opts; j++)
            if (strlen(opts[j].name) == nlen && !strncmp(opts[j].name, a, nlen)) { k = j; break; }
        if (k < 0) bad(usage, "unknown option", a);
        Opt *o = &opts[k];
        seen[k] = true;
        if (o->type == OPT_FLAG) {
            if (eq) bad(usage, "option takes no value", a);
            *(bool *)o->dst = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) bad(usage, "option needs a value", a);
        char *end;
        errno = 0;
        switch (o->type) {
        case OPT_INT: {
            long x = strtol(v, &end, 10);
            if (*end || end == v || errno || x < -2147483647L || x > 2147483647L) bad(usage, "expected an integer for", a);
            *(int *)o->dst = (int)x;
            break;
        }
        case OPT_I64: {
            long long x = strtoll(v, &end, 10);
            if (*end || end == v || errno) bad(usage, "expected an integer for", a);
            *(int64_t *)o->dst = x;
            break;
        }
        case OPT_SIZE: {
            int64_t x = parse_size(v);
            if (x < 0) bad(usage, "expected a size like 4G, 512M for", a);
            *(int64_t *)o->dst = x;
            break;
        }
        case OPT_DOUBLE: {
            double x = strtod(v, &end);
            if (*end || end == v || errno) bad(usage, "expected a number for", a);
            *(double *)o->dst = x;
            break;
        }
        case OPT_STR: *(const char **)o->dst = v; break;
        case OPT_STRS:
            // "--input a b c": take following non-option words too
            strlist_push((StrList *)o->dst, v);
            while (!eq && i + 1 < argc && argv[i + 1][0] != '-') strlist_push((StrList *)o->dst, argv[++i]);
            break;
        default: break;
        }
    }
    for (int j = 0; j < n_opts; j++)
        if (opts[j].required && !seen[j]) bad(usage, "missing required option", opts[j].name);
    free(seen);
}
