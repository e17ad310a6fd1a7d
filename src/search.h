/*-------------------------------------------------------------------------
 *
 * search.h
 *		The search documents in userlife.user_search (search.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_SEARCH_H
#define USERLIFE_SEARCH_H

#include "access/htup.h"
#include "utils/relcache.h"

extern void SearchInit(void);
extern bool SearchDocumentsInstalled(void);
extern bool SearchDocumentChanged(TupleDesc desc, HeapTuple oldtup, HeapTuple newtup);
extern void SearchWriteDocument(Relation users, HeapTuple tuple, bool replace);
extern void SearchDropDocument(Relation users, HeapTuple tuple);

#endif							/* USERLIFE_SEARCH_H */
