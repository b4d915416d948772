import Foundation
import Network

/// The iOS side of the core's network trait, backed by NWPathMonitor. Not compiled here (no Swift
/// toolchain on this machine); its syntax is checked with the generated bindings.
final class PathNetworkMonitor: NetworkMonitor, @unchecked Sendable {
    private let monitor = NWPathMonitor()
    private let lock = NSLock()
    private var path: NWPath?

    init() {
        monitor.pathUpdateHandler = { [weak self] path in
            guard let self = self else { return }
            self.lock.lock()
            self.path = path
            self.lock.unlock()
        }
        monitor.start(queue: DispatchQueue(label: "vn.congdan.network"))
    }

    deinit {
        monitor.cancel()
    }

    func currentState() throws -> NetworkState {
        lock.lock()
        let current = path
        lock.unlock()
        guard let current = current else {
            throw PlatformError.Failed(reason: "network path not known yet")
        }
        if current.status != .satisfied {
            return .offline
        }
        return current.isExpensive || current.isConstrained ? .metered : .unmetered
    }
}
