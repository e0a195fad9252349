/// In-process cache of candidates in `new/`, so a claim does not list the directory each time.
/// A queue with a moving head: popping near the head is O(1).
struct ClaimScanState {
    private var items: [String] = []
    private var head = 0
    private var known: Set<String> = []
    var scannedAt: Int64 = 0
    /// mtime of `new/` when it was last listed: unchanged means no entry came or went since.
    var scannedDirMtime: Int64 = -1
    /// Real time of that listing (the file system's clock, not an injected one).
    var scannedWallNanos: Int64 = 0
    /// Earliest not-before time among items that were not yet due at the last scan.
    var nextDueNanos: Int64? = nil
    var invalidated = true
    /// Set by the first claim through this handle: only then are new names worth keeping (see `noteNewItems`).
    var claiming = false
    /// The queue's `delay` the last claim asked for (it shifts every first attempt's due time).
    var delayNanos: Int64 = 0
    /// xorshift64 state for `popNear`: the pick only spreads consumers apart, and the system generator costs a
    /// getrandom(2) per call, one per claim.
    private var spread = UInt64.random(in: 1...UInt64.max)

    var isEmpty: Bool { head >= items.count }

    mutating func replace(with names: [String]) {
        items = names
        head = 0
        known = Set(names)
    }

    mutating func append(_ names: [String]) {
        for n in names where !known.contains(n) {
            items.append(n)
            known.insert(n)
        }
    }

    /// Removes and returns one of the first `head` candidates, chosen at random, so that competing
    /// consumers rarely try the same name at the same moment.
    mutating func popNear(head window: Int) -> String? {
        guard head < items.count else { return nil }
        spread ^= spread << 13
        spread ^= spread >> 7
        spread ^= spread << 17
        let pick = head + Int(spread % UInt64(min(window, items.count - head)))
        items.swapAt(head, pick)
        let name = items[head]
        head += 1
        known.remove(name)
        if head > 4096 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return name
    }
}
