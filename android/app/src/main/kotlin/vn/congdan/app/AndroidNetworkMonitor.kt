package vn.congdan.app

import android.content.Context
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import vn.congdan.core.NetworkMonitor
import vn.congdan.core.NetworkState
import vn.congdan.core.PlatformException

/**
 * The Android side of the core's network trait: asks ConnectivityManager for the active network.
 * Not compiled in this repository's CI (no Android SDK here); the JVM tests exercise the same
 * trait through a test implementation against the real library.
 */
class AndroidNetworkMonitor(context: Context) : NetworkMonitor {
    private val connectivity = context.getSystemService(ConnectivityManager::class.java)

    override fun currentState(): NetworkState {
        val manager = connectivity ?: throw PlatformException.Failed("ConnectivityManager unavailable")
        val network = manager.activeNetwork ?: return NetworkState.OFFLINE
        val caps = manager.getNetworkCapabilities(network) ?: return NetworkState.OFFLINE
        if (!caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) ||
            !caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED)
        ) {
            return NetworkState.OFFLINE
        }
        return if (caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED)) {
            NetworkState.UNMETERED
        } else {
            NetworkState.METERED
        }
    }
}
