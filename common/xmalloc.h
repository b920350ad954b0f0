/*
 * xmalloc.h — allocation wrappers that log and exit on out-of-memory.
 * Use them where dying is the right answer; parsers that must not exit
 * use plain calloc/reallocarray and return an error instead.
 */
#ifndef VIRTMAIL_XMALLOC_H
#define VIRTMAIL_XMALLOC_H

#include <stddef.h>

/* malloc(size), never NULL. */
void	*xmalloc(size_t size);
/* calloc(n, size), overflow-checked, never NULL. */
void	*xcalloc(size_t n, size_t size);
/* reallocarray(p, n, size), overflow-checked, never NULL. */
void	*xreallocarray(void *p, size_t n, size_t size);
/* strdup(s), never NULL. */
char	*xstrdup(const char *s);

#endif
