extension CLI {
    /// Long-running commands (`serve`, `consume`).
    static let serviceCommands: [Command] = []
}
